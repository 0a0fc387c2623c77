import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Password and keyboard-interactive authentication against a real sshd, answered by a closure (what a front end
/// plugs in): the account is a throwaway local user with a password, made by the test (root only).
@Suite("Password and keyboard-interactive authentication", .serialized)
struct PasswordAuthTests {
    /// Records what was asked and answers from a list (the last answer repeats).
    final class Answerer: @unchecked Sendable {
        private let lock = NSLock()
        private var asked: [SecretRequest] = []
        private let answers: [String?]

        init(_ answers: [String?]) { self.answers = answers }

        var requests: [SecretRequest] { lock.withLock { asked } }

        func answer(_ request: SecretRequest) -> String? {
            lock.withLock {
                asked.append(request)
                return answers[min(asked.count, answers.count) - 1]
            }
        }
    }

    static let passwordServer = ["PasswordAuthentication yes"]
    /// sshd asks PAM, which asks its "Password: " question through keyboard-interactive.
    static let pamServer = ["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication yes"]

    static func server(_ lines: [String]) throws -> SSHDFixture {
        var options = SSHDFixture.Options()
        options.extraConfig = lines
        // VERBOSE: sshd logs failed keyboard-interactive attempts too (failed passwords it logs at INFO).
        options.logLevel = "VERBOSE"
        return try SSHDFixture(options: options)
    }

    static func settings(_ sshd: SSHDFixture, user: String, answerer: Answerer?, preferred: [AuthenticationMethod]? = nil,
                         prompts: Int = 3) -> ConnectionSettings {
        var settings = ConnectionSettings(
            name: "pw", hostName: sshd.host, port: sshd.port, user: user, identityFiles: [],
            hostKeyPolicy: HostKeyPolicy(mode: .strict, knownHostsFiles: [sshd.knownHostsPath]), connectTimeoutSeconds: 20)
        settings.numberOfPasswordPrompts = prompts
        settings.authenticationMethods = AuthenticationPlan.configured(
            preferred: preferred, publickey: true, keyboardInteractive: true, password: true, passwordPrompts: prompts)
        if let answerer { settings.askSecret = { answerer.answer($0) } }
        return settings
    }

    static func start(_ settings: ConnectionSettings) async throws -> Result<SessionInfo, Error> {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        let result: Result<SessionInfo, Error>
        do {
            result = .success(try await tunnel.start())
            await tunnel.stop()
        } catch {
            result = .failure(error)
        }
        try await group.shutdownGracefully()
        return result
    }

    @Test("a password logs in, asked once with OpenSSH's prompt",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func password() async throws {
        let user = try ThrowawayUser(password: "pw-Corr3ct horse")
        defer { user.remove() }
        let sshd = try Self.server(Self.passwordServer)
        let answerer = Answerer([user.password])
        let info = try await Self.start(Self.settings(sshd, user: user.name, answerer: answerer)).get()
        #expect(info.identityFile == "password")
        #expect(answerer.requests.map(\.prompt) == ["\(user.name)@127.0.0.1's password: "])
        #expect(answerer.requests.first?.kind == .password)
        #expect(sshd.log.contains("Accepted password for \(user.name)"), "\(sshd.log)")
    }

    @Test("keyboard-interactive (PAM's question) logs in, with the server's prompt",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func keyboardInteractive() async throws {
        let user = try ThrowawayUser(password: "kbd-s3cret")
        defer { user.remove() }
        let sshd = try Self.server(["UsePAM yes", "KbdInteractiveAuthentication yes"])
        let answerer = Answerer([user.password])
        let info = try await Self.start(Self.settings(sshd, user: user.name, answerer: answerer)).get()
        #expect(info.identityFile == "keyboard-interactive")
        #expect(answerer.requests.map(\.kind) == [.keyboardInteractive])
        #expect(answerer.requests.first?.prompt.lowercased().contains("password") == true, "\(answerer.requests)")
        #expect(sshd.log.contains("Accepted keyboard-interactive/pam for \(user.name)"), "\(sshd.log)")
    }

    @Test("a wrong password: asked NumberOfPasswordPrompts times, then the error lists what was tried",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func wrongPassword() async throws {
        let user = try ThrowawayUser(password: "the-right-one")
        defer { user.remove() }
        let sshd = try Self.server(Self.passwordServer)
        let key = try sshd.makeUnauthorizedKey()
        let answerer = Answerer(["wrong"])
        var settings = Self.settings(sshd, user: user.name, answerer: answerer, prompts: 2)
        settings.identityFiles = [key]
        let result = try await Self.start(settings)
        guard case .failure(let error) = result else {
            Issue.record("logged in with a wrong password")
            return
        }
        let message = "\(error)"
        #expect(answerer.requests.count == 2, "NumberOfPasswordPrompts 2: \(answerer.requests)")
        #expect(answerer.requests.map(\.attempt) == [1, 2])
        #expect(message.contains("tried publickey (\(key)), password: all refused by the server"), "\(message)")
        #expect(message.contains("password: the server refused the password (2 tries"), "\(message)")
        #expect(sshd.log.components(separatedBy: "Failed password for \(user.name)").count - 1 == 2, "\(sshd.log)")
    }

    @Test("PreferredAuthentications decides which of password and keyboard-interactive goes first",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func preferredOrder() async throws {
        let user = try ThrowawayUser(password: "order-matters")
        defer { user.remove() }
        let sshd = try Self.server(Self.pamServer)
        // Wrong answers throughout, one try each: sshd's log shows the order the methods were tried in.
        let wrong = Answerer(["wrong"])
        let failed = try await Self.start(Self.settings(sshd, user: user.name, answerer: wrong,
                                                        preferred: [.password, .keyboardInteractive], prompts: 1))
        guard case .failure(let error) = failed else {
            Issue.record("logged in with a wrong password")
            return
        }
        #expect("\(error)".contains("tried password, keyboard-interactive: all refused by the server"), "\(error)")
        #expect(wrong.requests.map(\.kind) == [.password, .keyboardInteractive])
        let log = sshd.log
        let password = log.range(of: "Failed password for \(user.name)")
        let interactive = log.range(of: "Failed keyboard-interactive/pam for \(user.name)")
        #expect(password != nil && interactive != nil, "\(log)")
        if let password, let interactive { #expect(password.lowerBound < interactive.lowerBound, "\(log)") }

        // The other order, with the right answer: keyboard-interactive logs in and no password is sent.
        let right = Answerer([user.password])
        let info = try await Self.start(Self.settings(sshd, user: user.name, answerer: right,
                                                      preferred: [.keyboardInteractive, .password])).get()
        #expect(info.identityFile == "keyboard-interactive")
        #expect(right.requests.map(\.kind) == [.keyboardInteractive])
        #expect(sshd.log.contains("Accepted keyboard-interactive/pam for \(user.name)"), "\(sshd.log)")
    }

    @Test("a person who takes longer than ConnectTimeout to answer is waited for",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func slowAnswerIsWaitedFor() async throws {
        let user = try ThrowawayUser(password: "take-your-time")
        defer { user.remove() }
        let sshd = try Self.server(Self.passwordServer)
        var settings = Self.settings(sshd, user: user.name, answerer: nil)
        settings.connectTimeoutSeconds = 1
        settings.askSecret = { _ in
            Thread.sleep(forTimeInterval: 2.5)
            return user.password
        }
        let info = try await Self.start(settings).get()
        #expect(info.identityFile == "password")
    }

    @Test("a server that wants a password, and nobody to ask: the message says to use a key or the agent")
    func nobodyToAsk() async throws {
        let sshd = try Self.server(Self.passwordServer)
        let result = try await Self.start(Self.settings(sshd, user: "nobody-to-ask", answerer: nil))
        guard case .failure(let error) = result else {
            Issue.record("logged in without a password")
            return
        }
        let message = "\(error)"
        #expect(message.contains("tried password"), "\(message)")
        #expect(message.contains("password: needs a person to answer, and nobody can be asked here: use a key (IdentityFile) or the agent"), "\(message)")
        #expect(!sshd.log.contains("Failed password"), "no password may be sent: \(sshd.log)")
    }
}
