// The engine's API for jump hosts and for "needs authentication", as an embedder uses it (ConnectionSettings built
// by hand, HostTunnel events and properties), against real sshds on 127.0.0.1. Isolation of the server behind the
// jump host is proven by the CLI tests (network namespace); here both listen on loopback and the jump host's log
// shows the channel it opened.
import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

@Suite("jump hosts and needs-authentication through the engine API", .serialized)
struct JumpEngineTests {
    static func settings(_ sshd: SSHDFixture, name: String, key: String? = nil) -> ConnectionSettings {
        var settings = ConnectionSettings(
            name: name, hostName: sshd.host, port: sshd.port, user: sshd.user, identityFiles: [key ?? sshd.clientKeyPath],
            hostKeyPolicy: HostKeyPolicy(mode: .strict, knownHostsFiles: [sshd.knownHostsPath]), connectTimeoutSeconds: 20)
        settings.agentSocket = nil
        return settings
    }

    @Test("ConnectionSettings.jumpHosts: the session goes through the jump host's channel; jumpHostStatus says it is up")
    func throughAJumpHost() async throws {
        var options = SSHDFixture.Options()
        options.logLevel = "DEBUG1"  // shows each direct-tcpip target
        let bastion = try SSHDFixture(options: options)
        let target = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        var settings = Self.settings(target, name: "db")
        settings.jumpHosts = [Self.settings(bastion, name: "bastion")]
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spec = ForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, targetHost: "127.0.0.1", targetPort: echo.port,
                               location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings, localForwards: [spec], eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { info in
            #expect(info.hostKeyFingerprint == target.hostKeyFingerprint)
            let port = try #require(tunnel.boundAddresses.first.flatMap { Int($0.split(separator: ":").last ?? "") })
            let payload = Array("over the jump host".utf8)
            let echoed = try await onOwnThread { try TCPTestClient.connect(port: port).exchange(payload) }
            #expect(echoed == payload)
            let status = tunnel.jumpHostStatus
            #expect(status.count == 1 && status.first?.name == "bastion")
            guard case .up(let hop)? = status.first?.state else {
                Issue.record("the jump host is not reported up: \(status)")
                return
            }
            #expect(hop.hostKeyFingerprint == bastion.hostKeyFingerprint)
            #expect(bastion.log.contains("to 127.0.0.1 port \(target.port)"), "the bastion opened the channel to the target: \(bastion.log)")
        }
    }

    @Test("a key whose passphrase nobody can give: one needsAuthentication event, the property set, no retry")
    func needsAuthentication() async throws {
        var options = SSHDFixture.Options()
        options.logLevel = "VERBOSE"
        let sshd = try SSHDFixture(options: options)
        let key = try sshd.makeClientKey(type: "ed25519", passphrase: "a person knows it")
        var settings = Self.settings(sshd, name: "locked", key: key)
        settings.askSecret = nil
        settings.reconnectDelay = 0.2
        settings.reconnectMaxDelay = 0.5
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        let events = NIOLockedValueBox<[String]>([])
        try await tunnel.keepUp { event in
            let name: String
            switch event {
            case .connected: name = "connected"
            case .sessionLost: name = "sessionLost"
            case .attemptFailed: name = "attemptFailed"
            case .needsAuthentication(let reason): name = reason.needsPerson ? "needsAuthentication" : "needsAuthentication?"
            }
            events.withLockedValue { $0.append(name) }
        }
        try await onOwnThread {
            try waitUntil(timeout: 30, "the needsAuthentication event") { events.withLockedValue { $0.contains("needsAuthentication") } }
            // With retries at most 0.5 s apart, a loop would show more connections within this quiet period.
            try waitUntilStable(timeout: 20, quiet: 3, "sshd's count of connections") {
                sshd.log.components(separatedBy: "Connection from 127.0.0.1").count - 1
            }
        }
        #expect(events.withLockedValue { $0 } == ["needsAuthentication"])
        #expect(tunnel.needsAuthentication?.needsPerson == true)
        #expect(sshd.log.components(separatedBy: "Connection from 127.0.0.1").count - 1 == 1, "\(sshd.log)")
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}
