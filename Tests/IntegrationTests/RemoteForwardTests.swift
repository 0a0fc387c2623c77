import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Remote forwards (`ssh -R`) through a real OpenSSH sshd on 127.0.0.1: a client connects to the port sshd listens
/// on for us, and the bytes reach a real TCP server on this side.
@Suite("Remote forwards against a real sshd", .serialized)
struct RemoteForwardTests {
    /// `RemoteForward 127.0.0.1:PORT 127.0.0.1:TARGET`, or `localhost` when `bind` is nil. The target host may be
    /// a name (`nonexistent.invalid`).
    static func spec(port: Int, target: Int, targetHost: String = "127.0.0.1", bind: BindAddress = .address("127.0.0.1"),
                     line: Int = 1) -> RemoteForwardSpec {
        RemoteForwardSpec(bind: bind, listenPort: port, target: .host(targetHost, port: target),
                          location: SourceLocation(file: "test", line: line))
    }

    /// A started tunnel with `remote` (and `local`) forwards, run `body` (on a thread of its own: it blocks on
    /// sockets and waits), stop everything.
    static func withRemoteTunnel(_ sshd: SSHDFixture, remote: [RemoteForwardSpec], local: [ForwardSpec] = [],
                                 exitOnFailure: Bool = false,
                                 _ body: @escaping @Sendable (HostTunnel) throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = remote
        settings.exitOnForwardFailure = exitOnFailure
        let tunnel = HostTunnel(settings: settings, localForwards: local, eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { _ in try await onOwnThread { try body(tunnel) } }
    }

    /// The port the server listens on for forward `index`, once it does.
    static func listeningPort(_ tunnel: HostTunnel, _ index: Int, timeout: Double = 15) throws -> Int {
        var port: Int?
        try waitUntil(timeout: timeout, "remote forward \(index) to be listening (status: \(tunnel.remoteForwardStatus))") {
            if case .listening(let bound) = tunnel.remoteForwardStatus[index].state { port = bound }
            return port != nil
        }
        return port!
    }

    @Test("bytes round-trip intact through the server-side port: echo, download, upload with half-close")
    func roundTrip() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let source = try TCPTestServer(behavior: .source(bytes: 3_000_000))
        let sink = try TCPTestServer(behavior: .replyAfterEOF)
        let remote = [
            Self.spec(port: try freeTCPPort(), target: echo.port, line: 1),
            Self.spec(port: try freeTCPPort(), target: source.port, line: 2),
            Self.spec(port: try freeTCPPort(), target: sink.port, line: 3),
        ]
        try await Self.withRemoteTunnel(sshd, remote: remote) { tunnel in
            let ports = try (0..<3).map { try Self.listeningPort(tunnel, $0) }
            #expect(ports == remote.map(\.listenPort))

            let payload = TestData.pseudoRandom(count: 4_000_000, seed: 11)
            let echoed = try TCPTestClient.connect(port: ports[0]).exchange(payload)
            #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payload), "echo: \(echoed.count) of \(payload.count) bytes")

            let downloaded = try TCPTestClient.connect(port: ports[1]).receiveAll()
            #expect(downloaded == TestData.pseudoRandom(count: 3_000_000, seed: TCPTestServer.sourceSeed))

            // The sink replies only after our EOF crossed both the SSH channel and the local connection.
            let upload = TestData.pseudoRandom(count: 2_000_000, seed: 12)
            let reply = String(decoding: try TCPTestClient.connect(port: ports[2]).exchange(upload), as: UTF8.self)
            #expect(reply == "bytes=\(upload.count) sha256=\(TestData.sha256Hex(upload))\n")

            #expect(tunnel.counters.snapshot.connectionsAccepted == 3)
            try waitUntil(timeout: 10, "all forwarded connections to close") { tunnel.counters.snapshot.connectionsActive == 0 }
            #expect(tunnel.forwardDescriptions.contains("remote 127.0.0.1:\(ports[0]) -> 127.0.0.1:\(echo.port)"))
        }
    }

    @Test("RemoteForward 0 (no bind address: the server's loopback): the server picks the port, status reports it, and it carries bytes")
    func serverChosenPort() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await Self.withRemoteTunnel(sshd, remote: [Self.spec(port: 0, target: echo.port, bind: .loopback)]) { tunnel in
            let port = try Self.listeningPort(tunnel, 0)
            #expect(port > 0)
            #expect(tunnel.forwardDescriptions == ["remote localhost:\(port) -> 127.0.0.1:\(echo.port)"])
            let payload = Array("to the port the server chose".utf8)
            #expect(try TCPTestClient.connect(port: port).exchange(payload) == payload)
        }
    }

    @Test("50 concurrent remote-forwarded connections with checksummed payloads, each half-closed by its client")
    func manyConcurrentConnections() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await Self.withRemoteTunnel(sshd, remote: [Self.spec(port: try freeTCPPort(), target: echo.port)]) { tunnel in
            let port = try Self.listeningPort(tunnel, 0)
            let count = 50
            let payloads = (0..<count).map { TestData.pseudoRandom(count: 30_000 + $0 * 131, seed: UInt64(100 + $0)) }
            // All connected first, so all channels are live at once (and many arrive in one burst).
            let connections = try (0..<count).map { _ in try TCPTestClient.connect(port: port) }
            for (connection, payload) in zip(connections, payloads) {
                try connection.send(payload)
                connection.shutdownWrite()
            }
            for (index, connection) in connections.enumerated() {
                let echoed = try connection.receiveAll()
                #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payloads[index]), "connection \(index) got \(echoed.count) of \(payloads[index].count) bytes")
                connection.close()
            }
            try waitUntil(timeout: 10, "the echo server to see every connection") { echo.connectionsAccepted == count }
            try waitUntil(timeout: 10, "all forwarded connections to close") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("a client on the server's side that does not read holds the local target back instead of filling memory")
    func backpressure() async throws {
        let sshd = try SSHDFixture()
        // Well above the bound checked below, and small enough not to load the machine for parallel tests.
        let total = 80_000_000
        let source = try TCPTestServer(behavior: .source(bytes: total))
        try await Self.withRemoteTunnel(sshd, remote: [Self.spec(port: try freeTCPPort(), target: source.port)]) { tunnel in
            let slow = try TCPTestClient.connect(port: try Self.listeningPort(tunnel, 0))
            // Here the bytes go from our side (the local target) to the server: counted as sent.
            try waitUntilStable(timeout: 30, "the tunnel to stop taking bytes from a target whose client reads nothing") {
                tunnel.counters.snapshot.bytesSent
            }
            let buffered = tunnel.counters.snapshot.bytesSent
            // Bounded by sshd's and the client's socket buffers plus one SSH window; far below 80 MB.
            #expect(buffered < 32_000_000, "the tunnel took \(buffered) bytes for a client that reads nothing")
            var count = 0
            while true {
                let chunk = try slow.receive(upTo: 1 << 20, timeout: 30)
                if chunk.isEmpty { break }
                count += chunk.count
            }
            #expect(count == total)
        }
    }

    @Test("stop() during 10 remote-forwarded transfers ends them all at once, with nothing left open")
    func stopUnderLoad() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        // Below the ephemeral range: checked as no longer listened on at the end.
        settings.remoteForwards = [Self.spec(port: try freeTCPPortOutsideEphemeralRange(), target: echo.port)]
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        _ = try await tunnel.start()
        let port = try Self.listeningPort(tunnel, 0)
        let payload = TestData.pseudoRandom(count: 30_000_000, seed: 21)
        let transfers = (0..<10).map { _ in Thread.detachedResult { () -> Date in
            _ = try? TCPTestClient.connect(port: port).exchange(payload, timeout: 40)
            return Date()
        } }
        try waitUntil(timeout: 20, "traffic on all 10 connections") {
            tunnel.counters.snapshot.connectionsActive == 10 && tunnel.counters.snapshot.bytesSent > 10_000_000
        }
        let start = Date()
        await tunnel.stop()
        let stopTook = Date().timeIntervalSince(start)
        #expect(stopTook < 4, "stop() took \(stopTook) s")
        for (index, thread) in transfers.enumerated() {
            let when = try thread.wait(seconds: 45)
            #expect(when.timeIntervalSince(start) < 5, "transfer \(index) ended \(when.timeIntervalSince(start)) s after stop()")
        }
        #expect(tunnel.counters.snapshot.connectionsActive == 0)
        try waitUntil(timeout: 10, "sshd to close the forwarded port") { !TCPTestClient.isAccepting(port: port) }
        try waitUntil(timeout: 10, "the local target's connections to close") { echo.activeConnections == 0 }
        try await group.shutdownGracefully()
    }

    @Test("after sshd restarts, the new session asks for every remote forward again (fixed port and port 0)")
    func reaskedAfterReconnect() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [Self.spec(port: try freeTCPPort(), target: echo.port, line: 1),
                                   Self.spec(port: 0, target: echo.port, line: 2)]
        settings.reconnectDelay = 0.2
        settings.reconnectMaxDelay = 1
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            let payload = Array("before and after".utf8)
            for index in 0..<2 {
                #expect(try TCPTestClient.connect(port: try Self.listeningPort(tunnel, index)).exchange(payload) == payload)
            }
            try sshd.restart()
            try waitUntil(timeout: 30, "a second session") { tunnel.counters.snapshot.sessionsEstablished == 2 }
            for index in 0..<2 {
                let port = try Self.listeningPort(tunnel, index, timeout: 40)
                #expect(try TCPTestClient.connect(port: port).exchange(payload) == payload, "forward \(index) after the restart")
            }
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("a local target that refuses or cannot be resolved closes only that connection; the forward and others stay up")
    func localTargetFails() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let closedPort = try freeTCPPort()
        let remote = [
            Self.spec(port: try freeTCPPort(), target: closedPort, line: 1),
            Self.spec(port: try freeTCPPort(), target: 80, targetHost: "nonexistent.invalid", line: 2),
            Self.spec(port: try freeTCPPort(), target: echo.port, line: 3),
        ]
        try await Self.withRemoteTunnel(sshd, remote: remote) { tunnel in
            let ports = try (0..<3).map { try Self.listeningPort(tunnel, $0) }
            for attempt in 0..<2 {
                for index in 0..<2 {
                    let connection = try TCPTestClient.connect(port: ports[index])
                    // sshd accepted; our side could not connect, so the channel closes and sshd closes its client.
                    let got = try connection.receiveAll(timeout: 20)
                    #expect(got.isEmpty, "forward \(index), attempt \(attempt): expected the connection closed")
                    connection.close()
                }
            }
            let payload = Array("still forwarding".utf8)
            #expect(try TCPTestClient.connect(port: ports[2]).exchange(payload) == payload)
            #expect(tunnel.remoteForwardStatus.allSatisfy { if case .listening = $0.state { return true } else { return false } })
            try waitUntil(timeout: 10, "all forwarded connections to close") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("ExitOnForwardFailure yes: a port in use on the server keeps the host from coming up, with the forward named")
    func refusedWithExitOnForwardFailure() async throws {
        let sshd = try SSHDFixture()
        let squatter = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [Self.spec(port: squatter.port, target: 9)]
        settings.exitOnForwardFailure = true
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        do {
            _ = try await tunnel.start()
            Issue.record("the tunnel came up although its remote forward was refused")
        } catch {
            let message = "\(error)"
            #expect(message.contains("RemoteForward 127.0.0.1:\(squatter.port) -> 127.0.0.1:9: the server refused to listen"), "\(message)")
            #expect(message.contains("ExitOnForwardFailure yes"), "\(message)")
        }
        #expect(tunnel.counters.snapshot.sessionsEstablished == 0)
        try await group.shutdownGracefully()
    }

    @Test("AllowTcpForwarding local: the refusal carries the server's own words")
    func refusedWithTheServersWords() async throws {
        let sshd = try SSHDFixture(options: { var o = SSHDFixture.Options(); o.extraConfig = ["AllowTcpForwarding local"]; return o }())
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [Self.spec(port: try freeTCPPort(), target: 9)]
        settings.exitOnForwardFailure = true
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        do {
            _ = try await tunnel.start()
            Issue.record("the tunnel came up although the server forbids remote forwards")
        } catch {
            #expect("\(error)".contains("the server refused to listen: \"Server has disabled port forwarding.\""), "\(error)")
        }
        try await group.shutdownGracefully()
    }

    @Test("ExitOnForwardFailure no: a refused forward is retried with backoff while the others work, and comes up once the port is free")
    func refusedThenRetried() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let squatter = try TCPTestServer(behavior: .echo)
        let takenPort = squatter.port
        let remote = [Self.spec(port: takenPort, target: echo.port, line: 1),
                      Self.spec(port: try freeTCPPort(), target: echo.port, line: 2)]
        let local = [ForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, targetHost: "127.0.0.1", targetPort: echo.port,
                                 location: SourceLocation(file: "test", line: 3))]
        try await Self.withRemoteTunnel(sshd, remote: remote, local: local) { tunnel in
            try waitUntil(timeout: 15, "the first forward to be refused (status: \(tunnel.remoteForwardStatus))") {
                if case .refused = tunnel.remoteForwardStatus[0].state { return true } else { return false }
            }
            if case .refused(let reason) = tunnel.remoteForwardStatus[0].state {
                #expect(reason.contains("no reason given"), "\(reason)")
            }
            // The host's other forwards work meanwhile: the second remote one and the local one.
            let payload = Array("the others work".utf8)
            #expect(try TCPTestClient.connect(port: try Self.listeningPort(tunnel, 1)).exchange(payload) == payload)
            #expect(try TCPTestClient.connect(port: try boundPorts(tunnel)[0]).exchange(payload) == payload)
            // Asked again, and refused again: sshd logs each refused bind (the first retry comes within 1 s, the
            // next within 2 s).
            try waitUntil(timeout: 15, "sshd to refuse the port twice") {
                sshd.log.components(separatedBy: "bind [127.0.0.1]:\(takenPort): Address already in use").count - 1 >= 2
            }
            if case .listening = tunnel.remoteForwardStatus[0].state { Issue.record("listening on a port that is taken") }

            squatter.stop()
            // Backoff ceilings 1, 2, 4, 8 s: the next retry after the port is freed comes within 8-16 s.
            let port = try Self.listeningPort(tunnel, 0, timeout: 40)
            #expect(port == takenPort)
            #expect(try TCPTestClient.connect(port: port).exchange(payload) == payload)
        }
    }

    @Test("a remote forward asked for after the server's keepalives (ClientAliveInterval) were answered is granted")
    func requestedAfterServerKeepalives() async throws {
        // sshd's keepalives are global requests with want-reply *to us*: libssh2 answers them and queues nothing,
        // so the retried tcpip-forward still gets its own answer.
        let sshd = try SSHDFixture(options: { var o = SSHDFixture.Options(); o.extraConfig = ["ClientAliveInterval 1"]; return o }())
        let echo = try TCPTestServer(behavior: .echo)
        let squatter = try TCPTestServer(behavior: .echo)
        let takenPort = squatter.port
        try await Self.withRemoteTunnel(sshd, remote: [Self.spec(port: takenPort, target: echo.port)]) { tunnel in
            try waitUntil(timeout: 15, "the forward to be refused") {
                if case .refused = tunnel.remoteForwardStatus[0].state { return true } else { return false }
            }
            // Five keepalive intervals: unanswered, sshd would have dropped us after three (ClientAliveCountMax).
            Thread.sleep(forTimeInterval: 5)
            #expect(tunnel.counters.snapshot.sessionsEstablished == 1)
            squatter.stop()
            let port = try Self.listeningPort(tunnel, 0, timeout: 40)
            let payload = Array("after keepalives".utf8)
            #expect(try TCPTestClient.connect(port: port).exchange(payload) == payload)
        }
    }

    @Test("a remote forward asked for after 40 of our keepalives have run is granted, and the session stays up")
    func requestedAfterKeepalives() async throws {
        // libssh2 takes the first REQUEST_SUCCESS/FAILURE in its packet list as the answer to tcpip-forward: a
        // keepalive that left a stale reply there (a want-reply global request) would make this retry fail.
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let squatter = try TCPTestServer(behavior: .echo)
        let takenPort = squatter.port
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [Self.spec(port: takenPort, target: echo.port)]
        settings.serverAliveInterval = 0.02
        settings.serverAliveCountMax = 500  // about detection elsewhere; here only the replies matter
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        _ = try await tunnel.start()
        try await onOwnThread { [tunnel] in
            try waitUntil(timeout: 15, "the forward to be refused") {
                if case .refused = tunnel.remoteForwardStatus[0].state { return true } else { return false }
            }
            try waitUntil(timeout: 30, "40 keepalives to be sent") { tunnel.counters.snapshot.keepalivesSent >= 40 }
        }
        squatter.stop()
        try await onOwnThread { [tunnel] in
            let port = try Self.listeningPort(tunnel, 0, timeout: 40)
            let payload = Array("after keepalives".utf8)
            #expect(try TCPTestClient.connect(port: port).exchange(payload) == payload)
        }
        #expect(tunnel.counters.snapshot.keepalivesSent >= 40)
        #expect(tunnel.counters.snapshot.sessionsEstablished == 1, "the session never dropped")
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("after a half-dead link, the old session still holds the server-side port: the new session is refused, retries with backoff, and gets it once the old one is gone")
    func portHeldByTheOldSession() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let fixedPort = try freeTCPPort()
        var settings = settings(sshd)
        settings.remoteForwards = [Self.spec(port: fixedPort, target: echo.port)]
        settings.serverAliveInterval = 0.3
        settings.serverAliveCountMax = 2
        settings.reconnectDelay = 0.2
        settings.reconnectMaxDelay = 1
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            let payload = Array("old session".utf8)
            #expect(try TCPTestClient.connect(port: try Self.listeningPort(tunnel, 0)).exchange(payload) == payload)
            // Freeze only the session's processes (the one holding the port), not the listener: to us the link is
            // dead, to the server the old session and its port live on.
            guard let listener = sshd.listenerPID else { throw TestSupportError("no sshd") }
            let old = sshd.processes().filter { $0 != listener }
            #expect(!old.isEmpty)
            for pid in old { kill(pid, SIGSTOP) }
            defer { for pid in old { kill(pid, SIGCONT) } }
            try waitUntil(timeout: 20, "a new session after the keepalive deadline") { tunnel.counters.snapshot.sessionsEstablished >= 2 }
            try waitUntil(timeout: 20, "the port to be refused to the new session (the old one holds it)") {
                sshd.log.contains("bind [127.0.0.1]:\(fixedPort): Address already in use")
            }
            if case .listening = tunnel.remoteForwardStatus[0].state { Issue.record("listening while the old session holds the port") }
            // The old session wakes, finds its connection gone, and exits: the port is free, the retry gets it.
            for pid in old { kill(pid, SIGCONT) }
            let port = try Self.listeningPort(tunnel, 0, timeout: 30)
            #expect(port == fixedPort)
            #expect(try TCPTestClient.connect(port: port).exchange(Array("new session".utf8)) == Array("new session".utf8))
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}
