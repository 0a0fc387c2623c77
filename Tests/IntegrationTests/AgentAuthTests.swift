import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Public-key authentication through a real OpenSSH ssh-agent (started by each test, keys added with ssh-add),
/// against a real sshd.
@Suite("ssh-agent authentication", .serialized,
       .enabled(if: SSHAgentFixture.unavailableReason == nil, "needs ssh-agent: \(SSHAgentFixture.unavailableReason ?? "")"))
struct AgentAuthTests {
    static func server() throws -> SSHDFixture {
        var options = SSHDFixture.Options()
        // VERBOSE: sshd logs every key offered, also the refused ones ("Failed publickey ... SHA256:...").
        options.logLevel = "VERBOSE"
        return try SSHDFixture(options: options)
    }

    static func settings(_ sshd: SSHDFixture, agent: String?, identityFiles: [String] = []) -> ConnectionSettings {
        var settings = ConnectionSettings(
            name: "agent", hostName: sshd.host, port: sshd.port, user: sshd.user, identityFiles: identityFiles,
            hostKeyPolicy: HostKeyPolicy(mode: .strict, knownHostsFiles: [sshd.knownHostsPath]), connectTimeoutSeconds: 20)
        settings.agentSocket = agent
        settings.authenticationMethods = [.publickey]
        return settings
    }

    static func fingerprint(_ keyPath: String) throws -> String {
        let output = try ProcessRunner("/usr/bin/ssh-keygen", ["-l", "-f", keyPath + ".pub"]).runChecked().stdoutText
        return output.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
    }

    /// Starts a tunnel with one local forward to `target`, runs `body` with the forward's port, stops it.
    static func withTunnel(_ settings: ConnectionSettings, target: Int,
                           _ body: @escaping @Sendable (SessionInfo, Int) throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spec = ForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, targetHost: "127.0.0.1", targetPort: target,
                               location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings, localForwards: [spec], eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { info in
            let port = try #require(tunnel.boundAddresses.first?.split(separator: ":").last.flatMap { Int($0) })
            try await onOwnThread { try body(info, port) }
        }
    }

    static func failure(_ settings: ConnectionSettings) async throws -> String {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        var message = ""
        do {
            _ = try await tunnel.start()
            await tunnel.stop()
        } catch {
            message = "\(error)"
        }
        try await group.shutdownGracefully()
        return message
    }

    @Test("only the agent holds the key (its file deleted): the tunnel logs in and forwards")
    func agentOnly() async throws {
        let sshd = try Self.server()
        let agent = try SSHAgentFixture()
        defer { agent.stop() }
        let key = try sshd.makeClientKey(type: "ed25519")
        let fingerprint = try Self.fingerprint(key)
        try agent.add(key)
        try FileManager.default.removeItem(atPath: key)
        try FileManager.default.removeItem(atPath: key + ".pub")
        let echo = try TCPTestServer(behavior: .echo)
        try await Self.withTunnel(Self.settings(sshd, agent: agent.socketPath), target: echo.port) { info, port in
            #expect(info.identityFile.hasPrefix("agent key"), "\(info.identityFile)")
            let payload = TestData.pseudoRandom(count: 300_000, seed: 9)
            let echoed = try TCPTestClient.connect(port: port).exchange(payload)
            #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payload))
        }
        #expect(sshd.log.contains("Accepted publickey for \(sshd.user)") && sshd.log.contains(fingerprint), "\(sshd.log)")
    }

    @Test("the agent's keys come before the identity files; a refused agent key is counted in the error")
    func refusedAgentKey() async throws {
        let sshd = try Self.server()
        let agent = try SSHAgentFixture()
        defer { agent.stop() }
        let stranger = try sshd.makeUnauthorizedKey()
        try agent.add(stranger)
        let other = try sshd.makeUnauthorizedKey()
        let message = try await Self.failure(Self.settings(sshd, agent: agent.socketPath, identityFiles: [other]))
        #expect(message.contains("agent: 1 key refused by the server"), "\(message)")
        #expect(message.contains(other), "\(message)")
        // Offered to the server first: the agent's key, then the file's.
        let log = sshd.log
        let agentOffer = try #require(log.range(of: try Self.fingerprint(stranger)), "\(log)")
        let fileOffer = try #require(log.range(of: try Self.fingerprint(other)), "\(log)")
        #expect(agentOffer.lowerBound < fileOffer.lowerBound)
    }

    @Test("IdentitiesOnly yes: an agent key that matches no IdentityFile's .pub is not offered")
    func identitiesOnly() async throws {
        let sshd = try Self.server()
        let agent = try SSHAgentFixture()
        defer { agent.stop() }
        let key = try sshd.makeClientKey(type: "ed25519")
        try agent.add(key)
        let fingerprint = try Self.fingerprint(key)
        let unrelated = try sshd.makeUnauthorizedKey()
        var settings = Self.settings(sshd, agent: agent.socketPath, identityFiles: [unrelated])
        settings.identitiesOnly = true
        let message = try await Self.failure(settings)
        #expect(message.contains("agent: 1 key not offered (IdentitiesOnly yes"), "\(message)")
        #expect(message.contains(unrelated), "\(message)")
        #expect(!sshd.log.contains(fingerprint), "the agent key reached the server:\n\(sshd.log)")

        // The same agent key is offered (and logs in) once an IdentityFile's .pub matches it, the file itself gone.
        try FileManager.default.removeItem(atPath: key)
        settings.identityFiles = [key]
        try await Self.withTunnel(settings, target: 9) { info, _ in
            #expect(info.identityFile.hasPrefix("agent key"), "\(info.identityFile)")
        }
    }

    @Test("an agent with no keys, or none at the socket path: the identity files log in")
    func fallsBackToFiles() async throws {
        let sshd = try Self.server()
        let agent = try SSHAgentFixture()
        defer { agent.stop() }
        for socket in [agent.socketPath, agent.directory + "/missing.sock"] {
            try await Self.withTunnel(Self.settings(sshd, agent: socket, identityFiles: [sshd.clientKeyPath]), target: 9) { info, _ in
                #expect(info.identityFile == sshd.clientKeyPath)
            }
        }
    }
}
