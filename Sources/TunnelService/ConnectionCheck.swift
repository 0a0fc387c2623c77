import Foundation
import Logging
import NIOPosix
import TunnelConfig
import TunnelEngine

/// What `tunnel check FILE --connect` runs: for each host, one SSH session set up the way `tunnel up` sets it up
/// (same host-key policy, same authenticator), with no forwards, then closed politely. The result says what the
/// handshake negotiated, for `HandshakeExplanation` to put in words or for `--json`.
public struct ConnectionCheck: Sendable {
    public let configPath: String
    public let hostNames: [String]
    private let logger: Logger
    private let passphrasePrompt: PassphrasePrompt?

    public init(configPath: String, hostNames: [String] = [], logger: Logger, passphrasePrompt: PassphrasePrompt? = nil) {
        self.configPath = configPath
        self.hostNames = hostNames
        self.logger = logger
        self.passphrasePrompt = passphrasePrompt
    }

    public enum PlanError: Error, CustomStringConvertible {
        case config(ConfigErrors)
        case noHosts(file: String)
        case unknownHosts([String], known: [String], file: String)

        public var description: String {
            switch self {
            case .config(let errors): return errors.description
            case .noHosts(let file): return "\(file): no Host block with a forward; name the hosts to check"
            case .unknownHosts(let names, let known, let file):
                let knownList = known.isEmpty ? "none" : known.joined(separator: ", ")
                return "\(file): no Host named \(names.joined(separator: ", ")) (known: \(knownList))"
            }
        }
    }

    /// The hosts to check: the ones named (forwards or not), else every host `tunnel up` would bring up.
    public func plan() throws(PlanError) -> [HostConfig] {
        do throws(HostSelection.Failure) {
            return try HostSelection.select(configPath: configPath, hostNames: hostNames, logger: logger)
        } catch {
            switch error {
            case .config(let errors): throw .config(errors)
            case .noTunnels: throw .noHosts(file: configPath)
            case .unknownHosts(let names, let known): throw .unknownHosts(names, known: known, file: configPath)
            }
        }
    }

    /// Check every planned host, one after another (each bounded by its `ConnectTimeout`), in order.
    public func run() async throws(PlanError) -> [HostCheckResult] {
        let hosts = try plan()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var results: [HostCheckResult] = []
        var passphrases: [String: String] = [:]
        for host in hosts {
            results.append(await check(host, on: group, passphrases: &passphrases))
        }
        try? await group.shutdownGracefully()
        return results
    }

    private func check(_ host: HostConfig, on group: MultiThreadedEventLoopGroup,
                       passphrases: inout [String: String]) async -> HostCheckResult {
        var result = HostCheckResult(host: host.name, user: host.user, hostName: host.hostName, port: host.port)
        if let reason = Self.unsupportedSetting(host) {
            result.error = reason
            return result
        }
        var settings = ConnectionSettings(host)
        // No forwards of any kind: this session only proves it can be set up. One session, whatever `TunnelSessions`
        // says: `start()` opens one, and more would only make threads the check never uses.
        settings.remoteForwards = []
        settings.sessions = 1
        if let passphrasePrompt {
            // [ProxyJump] The jump hosts' keys too.
            for path in ([settings] + settings.jumpHosts).flatMap(IdentityFiles.needingPassphrase) where passphrases[path] == nil {
                passphrases[path] = passphrasePrompt.ask(forKey: path)
            }
            settings.passphrases = passphrases
            for index in settings.jumpHosts.indices { settings.jumpHosts[index].passphrases = passphrases }
        }
        let tunnel = HostTunnel(settings: settings, localForwards: [], dynamicForwards: [],
                                eventLoop: group.next(), logger: logger)
        do {
            let info = try await tunnel.start()
            result.session = SessionFacts(info)
        } catch {
            result.error = UserMessage.describe(error)
        }
        // [ProxyJump] What happened at each jump host on the way.
        result.jumpHosts = settings.jumpHosts.indices.map { index in
            JumpHostCheck(settings.jumpHosts[index], status: tunnel.jumpHostStatus.indices.contains(index) ? tunnel.jumpHostStatus[index] : nil)
        }
        // SSH_MSG_DISCONNECT, then the link closes.
        await tunnel.stop()
        return result
    }

    /// Settings that would make the check connect some other way than `tunnel up` would (or not at all).
    static func unsupportedSetting(_ host: HostConfig) -> String? {
        let place = host.location.map { " (Host at \($0))" } ?? ""
        if let problem = host.problems.first { return "\(problem)" }
        if let problem = host.algorithmProblem { return "\(problem)" }
        if let problem = host.jumpChainProblem { return "\(problem)" }
        if let problem = host.proxyCommandProblem { return "\(problem)" }
        if !host.pubkeyAuthentication {
            return "PubkeyAuthentication no\(place): public keys are the only authentication tunnel supports so far"
        }
        return nil
    }
}

/// One host's outcome, as `--json` prints it (Codable: no hand-built JSON).
public struct HostCheckResult: Sendable, Codable, Equatable {
    public var host: String
    public var user: String
    public var hostName: String
    public var port: Int
    public var passed: Bool { error == nil && session != nil }
    /// What went wrong, in the words `tunnel up` would log (nil when the host passed).
    public var error: String?
    /// The handshake's facts (nil when no session was set up).
    public var session: SessionFacts?
    /// [ProxyJump] Each jump host on the way, first connected first (empty for a direct connection).
    public var jumpHosts: [JumpHostCheck] = []

    public init(host: String, user: String, hostName: String, port: Int, error: String? = nil, session: SessionFacts? = nil) {
        self.host = host
        self.user = user
        self.hostName = hostName
        self.port = port
        self.error = error
        self.session = session
    }

    enum CodingKeys: String, CodingKey {
        case host, user, hostName, port, passed, error, session, jumpHosts
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        host = try container.decode(String.self, forKey: .host)
        user = try container.decode(String.self, forKey: .user)
        hostName = try container.decode(String.self, forKey: .hostName)
        port = try container.decode(Int.self, forKey: .port)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        session = try container.decodeIfPresent(SessionFacts.self, forKey: .session)
        jumpHosts = try container.decodeIfPresent([JumpHostCheck].self, forKey: .jumpHosts) ?? []
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(host, forKey: .host)
        try container.encode(user, forKey: .user)
        try container.encode(hostName, forKey: .hostName)
        try container.encode(port, forKey: .port)
        // `passed` is derived, but scripts want it spelt out.
        try container.encode(passed, forKey: .passed)
        try container.encodeIfPresent(error, forKey: .error)
        try container.encodeIfPresent(session, forKey: .session)
        if !jumpHosts.isEmpty { try container.encode(jumpHosts, forKey: .jumpHosts) }
    }
}

/// [ProxyJump] What happened at one jump host during a check.
public struct JumpHostCheck: Sendable, Codable, Equatable {
    public var host: String
    public var user: String
    public var hostName: String
    public var port: Int
    /// "up", "failed" or "not tried" (an earlier hop failed, so this one was never reached).
    public var outcome: String
    public var error: String?
    public var session: SessionFacts?

    init(_ settings: ConnectionSettings, status: JumpHostStatus?) {
        host = settings.name
        user = settings.user
        hostName = settings.hostName
        port = settings.port
        switch status?.state {
        case .up(let info)?:
            outcome = "up"
            session = SessionFacts(info)
        case .failed(let reason)?:
            outcome = "failed"
            error = UserMessage.describe(reason)
        case .notTried?, nil:
            outcome = "not tried"
        }
    }
}

/// What a set-up session showed of the handshake.
public struct SessionFacts: Sendable, Codable, Equatable {
    public var algorithms: NegotiatedAlgorithms
    public var hostKeyType: String
    /// "SHA256:..." as `ssh-keygen -l` prints it.
    public var hostKeyFingerprint: String
    /// "known_hosts FILE:LINE", "new host key recorded in FILE", "not checked".
    public var hostKeyStatus: String
    /// The authentication method that succeeded ("publickey": the only one so far).
    public var authenticationMethod: String
    public var identityFile: String

    public init(algorithms: NegotiatedAlgorithms, hostKeyType: String, hostKeyFingerprint: String, hostKeyStatus: String,
                authenticationMethod: String, identityFile: String) {
        self.algorithms = algorithms
        self.hostKeyType = hostKeyType
        self.hostKeyFingerprint = hostKeyFingerprint
        self.hostKeyStatus = hostKeyStatus
        self.authenticationMethod = authenticationMethod
        self.identityFile = identityFile
    }

    init(_ info: SessionInfo) {
        // SessionInfo names the key file that logged in, or the method when no key did.
        let byName = ["password", "keyboard-interactive", "none"].contains(info.identityFile)
        self.init(algorithms: info.algorithms, hostKeyType: info.hostKeyType, hostKeyFingerprint: info.hostKeyFingerprint,
                  hostKeyStatus: info.hostKeyStatus, authenticationMethod: byName ? info.identityFile : "publickey",
                  identityFile: byName ? "" : info.identityFile)
    }
}
