// `TunnelSessions N` against a real sshd: N logins, forwarded connections spread over the sessions, a remote
// forward asked for once, and the host still serving when one session's server process dies.
import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

@Suite("Several SSH sessions to one host (TunnelSessions), against a real sshd", .serialized)
struct SessionsTests {
    /// Settings for `sessions` sessions that retry after `retry` seconds, with one remote forward (port 0) to `echo`.
    static func settings(_ sshd: SSHDFixture, sessions: Int, retry: Double, echo: TCPTestServer) -> ConnectionSettings {
        var settings = IntegrationTests.settings(sshd)
        settings.sessions = sessions
        settings.reconnectDelay = retry
        settings.reconnectMaxDelay = retry
        settings.remoteForwards = [RemoteForwardTests.spec(port: 0, target: echo.port)]
        return settings
    }

    @Test("TunnelSessions 2: a start that fails (nothing listens) stops the tunnel, and a second stop returns at once")
    func stopAfterAFailedStartReturns() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = Self.settings(sshd, sessions: 2, retry: 1, echo: echo)
        settings.port = try freeTCPPort()
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        await #expect(throws: (any Error).self) { try await tunnel.start() }
        // start() stopped it, which shut the tunnel's own loops down; `tunnel check` then stops it again. That
        // second stop once submitted work to the shut-down loops and never returned.
        let stopped = Guarded(false)
        Task { await tunnel.stop(); stopped.withLock { $0 = true } }
        try await waitUntilAsync(timeout: 10, "the second stop() to return") { stopped.withLock { $0 } }
        try await group.shutdownGracefully()
    }

    @Test("TunnelSessions 3: three logins, connections spread over more than one session, one remote forward, survives losing a session")
    func threeSessions() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let settings = Self.settings(sshd, sessions: 3, retry: 2, echo: echo)
        let forward = ForwardSpec(bind: .address("127.0.0.1"), listenPort: try freeTCPPort(), targetHost: "127.0.0.1",
                                  targetPort: echo.port, location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings, localForwards: [forward], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            try waitUntil(timeout: 30, "three sessions up (status: \(tunnel.status.sessionsUp)/\(tunnel.status.sessionsWanted))") {
                tunnel.status.sessionsUp == 3
            }
            #expect(tunnel.status.sessionsWanted == 3)
            #expect(tunnel.status.reconnects == 0, "each session's first start is not a reconnect")
            try waitUntil(timeout: 10, "sshd to log three logins") {
                sshd.log.components(separatedBy: "Accepted publickey").count - 1 == 3
            }

            // Six connections held open: dealt round robin, every session carries some.
            let payload = Array("through one of three sessions".utf8)
            var clients: [TCPTestConnection] = []
            for _ in 0..<6 {
                let client = try TCPTestClient.connect(port: forward.listenPort)
                try client.send(payload)
                #expect(try client.receive(exactly: payload.count) == payload)
                clients.append(client)
            }
            try waitUntil(timeout: 10, "connections on more than one session (\(tunnel.status.sessionConnections))") {
                tunnel.status.sessionConnections.filter { $0 > 0 }.count > 1 && tunnel.status.sessionConnections.reduce(0, +) == 6
            }

            // The remote forward is asked for once (the server binds the port once), and works.
            let remotePort = try RemoteForwardTests.listeningPort(tunnel, 0)
            #expect(try TCPTestClient.connect(port: remotePort).exchange(payload) == payload)
            #expect(sshd.log.components(separatedBy: "Address already in use").count == 1, "no session asked for the port twice")

            // Kill one session's server process (a direct child of the listener serves each connection): the others
            // keep serving new connections, and the lost one comes back.
            guard let listener = sshd.listenerPID else { throw TestSupportError("no sshd") }
            let sessionProcesses = ProcessTree.snapshot().filter { $0.parent == listener }.map(\.pid)
            #expect(sessionProcesses.count == 3, "one sshd process per session: \(sessionProcesses)")
            let established = tunnel.counters.snapshot.sessionsEstablished
            let victim = sessionProcesses.last!
            for pid in [victim] + ProcessTree.descendants(of: victim) { kill(pid, SIGKILL) }
            // A connection opened on the session at the moment it dies is cut, as with one session: wait until the
            // loss is noticed. Those dealt to the lost session then wait for it (up to 2 s here); the rest go at once.
            try waitUntil(timeout: 10, "the loss noticed") { tunnel.status.sessionsUp == 2 }
            for _ in 0..<6 {
                let client = try TCPTestClient.connect(port: forward.listenPort)
                #expect(try client.exchange(payload) == payload, "served while a session is lost")
            }
            try waitUntil(timeout: 30, "the lost session back (status: \(tunnel.status.sessionsUp)/3)") {
                tunnel.counters.snapshot.sessionsEstablished > established && tunnel.status.sessionsUp == 3
            }
            if case .up = tunnel.status.state {} else { Issue.record("the host is up throughout: \(tunnel.status.state)") }
            #expect(tunnel.status.reconnects == 1)
            for client in clients { client.close() }
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("TunnelSessions 2: when the session holding the remote forward is lost, the other one asks for it")
    func remoteForwardMoves() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let settings = Self.settings(sshd, sessions: 2, retry: 1, echo: echo)
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            try waitUntil(timeout: 30, "two sessions up") { tunnel.status.sessionsUp == 2 }
            let payload = Array("remote".utf8)
            let first = try RemoteForwardTests.listeningPort(tunnel, 0)
            #expect(try TCPTestClient.connect(port: first).exchange(payload) == payload)
            // The session process that listens on the port, and the other one.
            guard let listener = sshd.listenerPID, let holder = try Self.listeningPID(port: first) else {
                throw TestSupportError("no sshd process listens on the remote port")
            }
            let sessions = ProcessTree.snapshot().filter { $0.parent == listener }.map(\.pid)
            guard let victim = sessions.first(where: { $0 == holder || ProcessTree.descendants(of: $0).contains(holder) }),
                  let survivor = sessions.first(where: { $0 != victim }) else {
                throw TestSupportError("cannot tell the sessions' processes apart: \(sessions), holder \(holder)")
            }
            for pid in [victim] + ProcessTree.descendants(of: victim) { kill(pid, SIGKILL) }
            try waitUntil(timeout: 10, "the remote forward asked for again (\(tunnel.remoteForwardStatus))") {
                guard case .listening(let port) = tunnel.remoteForwardStatus[0].state, port != first,
                      let owner = try? Self.listeningPID(port: port) else { return false }
                return owner == survivor || ProcessTree.descendants(of: survivor).contains(owner)
            }
            #expect(try TCPTestClient.connect(port: try RemoteForwardTests.listeningPort(tunnel, 0)).exchange(payload) == payload)
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    /// The process listening on a loopback TCP port, as `ss` reports it (it reads the whole socket table, however
    /// many sockets the machine has open).
    static func listeningPID(port: Int) throws -> pid_t? {
        let text = try ProcessRunner("ss", ["-ltnpH", "sport = :\(port)"]).runChecked(timeout: 10).stdoutText
        guard let range = text.range(of: "pid=") else { return nil }
        return pid_t(text[range.upperBound...].prefix { $0.isNumber })
    }

    @Test("TunnelSessions 1 keeps one session and shows no per-session counts")
    func oneSession() async throws {
        let sshd = try SSHDFixture()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = HostTunnel(settings: IntegrationTests.settings(sshd), localForwards: [], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            try waitUntil(timeout: 30, "the session up") { tunnel.status.sessionsUp == 1 }
            #expect(tunnel.status.sessionsWanted == 1 && tunnel.status.sessionConnections == [0])
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}
