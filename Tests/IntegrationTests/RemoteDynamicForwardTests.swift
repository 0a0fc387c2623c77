import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Remote dynamic forwarding (`RemoteForward [bind:]port` with no target, `ssh -R port`): sshd listens on 127.0.0.1,
/// a SOCKS client there (curl, or a hand-written one) connects to that port, and we are its SOCKS server, connecting
/// from this side to real servers on loopback.
@Suite("Remote dynamic forwarding (SOCKS served from here) against a real sshd", .serialized)
struct RemoteDynamicForwardTests {
    /// A started tunnel with one remote dynamic forward on the server's 127.0.0.1; `body` gets the server-side port.
    static func withRemoteSOCKS(_ sshd: SSHDFixture, permit: PermitRemoteOpen = .any, handshakeTimeout: Double = 10,
                                _ body: @escaping @Sendable (HostTunnel, Int) throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [RemoteForwardSpec(bind: .address("127.0.0.1"), listenPort: try freeTCPPort(), target: .socks,
                                                     location: SourceLocation(file: "test", line: 1))]
        settings.permitRemoteOpen = permit
        settings.remoteSOCKSHandshakeTimeout = handshakeTimeout
        let tunnel = HostTunnel(settings: settings, localForwards: [], eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { _ in
            try await onOwnThread { try body(tunnel, try RemoteForwardTests.listeningPort(tunnel, 0)) }
        }
    }

    static func curl(_ arguments: [String]) throws -> ProcessRunner.Output {
        try ProcessRunner("curl", ["-sS", "--max-time", "15", "--noproxy", ""] + arguments,
                          extraEnvironment: ["http_proxy": "", "https_proxy": "", "all_proxy": "", "HTTP_PROXY": "", "ALL_PROXY": ""]).run(timeout: 30)
    }

    /// SOCKS5 greeting (no auth) and CONNECT to `host:port` by name; the reply code and the connection.
    static func socks5Connect(port: Int, host: String, targetPort: Int, command: UInt8 = 1) throws -> (code: UInt8, connection: TCPTestConnection) {
        let connection = try TCPTestClient.connect(port: port)
        try connection.send([5, 1, 0] + [5, command, 0, 3, UInt8(host.utf8.count)] + Array(host.utf8) + [UInt8(targetPort >> 8), UInt8(targetPort & 0xFF)])
        let method = try connection.receive(exactly: 2)
        guard method == [5, 0] else { throw TestSupportError("method choice \(method)") }
        let reply = try connection.receive(exactly: 10)
        guard reply[0] == 5 else { throw TestSupportError("reply \(reply)") }
        return (reply[1], connection)
    }

    /// A SOCKS4 CONNECT to 127.0.0.1:`targetPort`, with `payload` in the same write; the reply code and the connection.
    static func socks4Connect(port: Int, targetPort: Int, payload: [UInt8] = []) throws -> (code: UInt8, connection: TCPTestConnection) {
        let connection = try TCPTestClient.connect(port: port)
        try connection.send([4, 1, UInt8(targetPort >> 8), UInt8(targetPort & 0xFF), 127, 0, 0, 1, 0] + payload)
        let reply = try connection.receive(exactly: 8)
        return (reply[1], connection)
    }

    @Test("curl on the server's side through SOCKS5 (name resolved here), SOCKS5 with an IP, and SOCKS4a reaches a server here")
    func curlThroughServerSidePort() async throws {
        let sshd = try SSHDFixture()
        let web = try TCPTestServer(behavior: .http(body: "from this side\n"))
        try await Self.withRemoteSOCKS(sshd) { tunnel, port in
            #expect(tunnel.forwardDescriptions.contains("remote 127.0.0.1:\(port) -> socks"))
            for (option, host) in [("--socks5-hostname", "localhost"), ("--socks5", "127.0.0.1"), ("--socks4a", "localhost")] {
                let out = try Self.curl([option, "127.0.0.1:\(port)", "http://\(host):\(web.port)/x"])
                #expect(out.succeeded, "\(option): \(out.stderrText)")
                #expect(out.stdoutText == "from this side\n", "\(option)")
            }
            #expect(web.connectionsAccepted == 3)
            try waitUntil(timeout: 10, "every forwarded connection closed") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("reply codes: refused (5), unknown name (4), BIND (7), SOCKS4 0x5B; each closes only its channel; payload sent with the request arrives")
    func replyCodes() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let closed = try freeTCPPort()
        try await Self.withRemoteSOCKS(sshd) { tunnel, port in
            // Held open across the failures below: they must not disturb it.
            let (ok, held) = try Self.socks5Connect(port: port, host: "127.0.0.1", targetPort: echo.port)
            #expect(ok == 0)
            try held.send(Array("before".utf8))
            #expect(try held.receive(exactly: 6) == Array("before".utf8))

            let (refused, c1) = try Self.socks5Connect(port: port, host: "127.0.0.1", targetPort: closed)
            #expect(refused == 5, "connection refused: the connect is made here, so the reason is known")
            #expect(try c1.receiveAll(timeout: 10).isEmpty, "closed after the failure reply")
            let (unknown, c2) = try Self.socks5Connect(port: port, host: "nonexistent.invalid", targetPort: 80)
            #expect(unknown == 4)
            #expect(try c2.receiveAll(timeout: 10).isEmpty)
            let (bind, _) = try Self.socks5Connect(port: port, host: "127.0.0.1", targetPort: echo.port, command: 2)
            #expect(bind == 7)
            let (socks4Refused, c3) = try Self.socks4Connect(port: port, targetPort: closed)
            #expect(socks4Refused == 0x5B)
            #expect(try c3.receiveAll(timeout: 10).isEmpty)

            // A client that sends its first bytes with the request, before the answer: they reach the target after it.
            let (granted, early) = try Self.socks4Connect(port: port, targetPort: echo.port, payload: Array("early bytes".utf8))
            #expect(granted == 0x5A)
            #expect(try early.receive(exactly: 11) == Array("early bytes".utf8))
            early.close()

            #expect(try held.exchange(Array("after".utf8)) == Array("after".utf8))
            held.close()
            try waitUntil(timeout: 10, "every forwarded connection closed") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("PermitRemoteOpen 127.0.0.1:PORT: that target works; another port, or the same one by name, is refused with 0x02")
    func permitRemoteOpen() async throws {
        let sshd = try SSHDFixture()
        let web = try TCPTestServer(behavior: .http(body: "allowed\n"))
        let other = try TCPTestServer(behavior: .echo)
        let permit = PermitRemoteOpen.only([.init(host: "127.0.0.1", port: web.port, written: "127.0.0.1:\(web.port)")])
        try await Self.withRemoteSOCKS(sshd, permit: permit) { tunnel, port in
            let allowed = try Self.curl(["--socks5", "127.0.0.1:\(port)", "http://127.0.0.1:\(web.port)/"])
            #expect(allowed.stdoutText == "allowed\n", "\(allowed.stderrText)")

            let (otherPort, c1) = try Self.socks5Connect(port: port, host: "127.0.0.1", targetPort: other.port)
            #expect(otherPort == 2, "connection not allowed by ruleset")
            #expect(try c1.receiveAll(timeout: 10).isEmpty)
            // Names are compared as written, as OpenSSH does: localhost is not 127.0.0.1.
            let (byName, _) = try Self.socks5Connect(port: port, host: "localhost", targetPort: web.port)
            #expect(byName == 2)
            let (socks4, _) = try Self.socks4Connect(port: port, targetPort: other.port)
            #expect(socks4 == 0x5B)
            let refusedByCurl = try Self.curl(["--socks5-hostname", "127.0.0.1:\(port)", "http://localhost:\(web.port)/"])
            #expect(!refusedByCurl.succeeded)
            #expect(other.connectionsAccepted == 0, "nothing refused was connected to")
            #expect(web.connectionsAccepted == 1)
            try waitUntil(timeout: 10, "every forwarded connection closed") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("garbage, a truncated request, a client that leaves mid-handshake and a silent one each close alone; a good client works meanwhile")
    func badInput() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await Self.withRemoteSOCKS(sshd, handshakeTimeout: 2) { tunnel, port in
            // A client that never finishes its request, held open across the others.
            let silent = try TCPTestClient.connect(port: port)
            try silent.send([5, 1])
            let started = Date()

            let (ok, good) = try Self.socks5Connect(port: port, host: "127.0.0.1", targetPort: echo.port)
            #expect(ok == 0)

            let http = try TCPTestClient.connect(port: port)
            try http.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(try http.receiveAll(timeout: 10).isEmpty, "not SOCKS: closed without an answer")

            let noMethod = try TCPTestClient.connect(port: port)
            try noMethod.send([5, 0])
            #expect(try noMethod.receiveAll(timeout: 10).isEmpty)

            let wrongVersion = try TCPTestClient.connect(port: port)
            try wrongVersion.send([5, 1, 0, 6, 1, 0, 1, 127, 0, 0, 1, 0, 80])
            #expect(try wrongVersion.receiveAll(timeout: 10) == [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0])

            let truncated = try TCPTestClient.connect(port: port)
            try truncated.send([5, 1, 0, 5, 1, 0, 3, 20, 0x61])
            truncated.shutdownWrite()
            #expect(try truncated.receiveAll(timeout: 10) == [5, 0])

            let payload = TestData.pseudoRandom(count: 300_000, seed: 21)
            #expect(TestData.sha256Hex(try good.exchange(payload)) == TestData.sha256Hex(payload))
            good.close()
            #expect(echo.connectionsAccepted == 1)

            // The silent one is closed by the deadline, not before.
            #expect(try silent.receiveAll(timeout: 10).isEmpty)
            #expect(Date().timeIntervalSince(started) >= 1.5)
            try waitUntil(timeout: 10, "every forwarded connection closed") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("40 concurrent connections through the server-side SOCKS port (SOCKS5 and SOCKS4a mixed), checksummed payloads")
    func concurrent() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await Self.withRemoteSOCKS(sshd) { tunnel, port in
            let count = 40
            let payloads = (0..<count).map { TestData.pseudoRandom(count: 20_000 + $0 * 977, seed: UInt64(500 + $0)) }
            let target = echo.port
            // Every request in flight at once, then every answer read.
            let connections = try (0..<count).map { index -> TCPTestConnection in
                let connection = try TCPTestClient.connect(port: port)
                if index % 2 == 0 {
                    try connection.send([5, 1, 0, 5, 1, 0, 3, 9] + Array("localhost".utf8) + [UInt8(target >> 8), UInt8(target & 0xFF)])
                } else {
                    try connection.send([4, 1, UInt8(target >> 8), UInt8(target & 0xFF), 0, 0, 0, 1, 0] + Array("localhost".utf8) + [0])
                }
                return connection
            }
            for (index, connection) in connections.enumerated() {
                if index % 2 == 0 {
                    #expect(try connection.receive(exactly: 12) == [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0], "connection \(index)")
                } else {
                    #expect(try connection.receive(exactly: 8)[1] == 0x5A, "connection \(index)")
                }
            }
            for (connection, payload) in zip(connections, payloads) {
                try connection.send(payload)
                connection.shutdownWrite()
            }
            for (index, connection) in connections.enumerated() {
                let echoed = try connection.receiveAll()
                #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payloads[index]), "connection \(index) got \(echoed.count) of \(payloads[index].count) bytes")
                connection.close()
            }
            #expect(tunnel.counters.snapshot.connectionsAccepted == count)
            try waitUntil(timeout: 10, "every forwarded connection closed") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }
}
