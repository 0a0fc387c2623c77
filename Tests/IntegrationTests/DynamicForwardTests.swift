import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// `DynamicForward`: the SOCKS 4/4a/5 and HTTP proxy, with real curl and hand-written clients, through a real sshd
/// to real servers on loopback.
@Suite("DynamicForward proxy against a real sshd", .serialized)
struct DynamicForwardTests {
    /// A started tunnel with one proxy port on 127.0.0.1 (port chosen by the kernel).
    struct Proxy: Sendable {
        let group: MultiThreadedEventLoopGroup
        let tunnel: HostTunnel
        let port: Int

        static func start(_ sshd: SSHDFixture, credentials: ProxyCredentials? = nil,
                          handshakeTimeout: TimeAmount = .seconds(10)) async throws -> Proxy {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let spec = DynamicForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, location: SourceLocation(file: "test", line: 1))
            let tunnel = HostTunnel(settings: settings(sshd), localForwards: [], dynamicForwards: [spec],
                                    proxyCredentials: credentials, proxyHandshakeTimeout: handshakeTimeout,
                                    eventLoop: group.next(), logger: testLogger)
            do {
                _ = try await tunnel.start()
                return Proxy(group: group, tunnel: tunnel, port: try boundPorts(tunnel)[0])
            } catch {
                try? await group.shutdownGracefully()
                throw error
            }
        }

        func finish() async throws {
            await tunnel.stop()
            try await group.shutdownGracefully()
        }
    }

    func withProxy(_ sshd: SSHDFixture, credentials: ProxyCredentials? = nil, handshakeTimeout: TimeAmount = .seconds(10),
                   _ body: (Proxy) async throws -> Void) async throws {
        let proxy = try await Proxy.start(sshd, credentials: credentials, handshakeTimeout: handshakeTimeout)
        do { try await body(proxy) } catch {
            try? await proxy.finish()
            throw error
        }
        try await proxy.finish()
    }

    func curl(_ arguments: [String]) throws -> ProcessRunner.Output {
        try ProcessRunner("curl", ["-sS", "--max-time", "15", "--noproxy", ""] + arguments,
                          extraEnvironment: ["http_proxy": "", "https_proxy": "", "all_proxy": "", "HTTP_PROXY": "", "ALL_PROXY": ""]).run(timeout: 30)
    }

    // MARK: - Real clients

    @Test("curl through SOCKS5 (name resolved by the server), SOCKS5 with an IP, and SOCKS4a")
    func curlSOCKS() async throws {
        let sshd = try SSHDFixture()
        let web = try TCPTestServer(behavior: .http(body: "through the proxy\n"))
        try await withProxy(sshd) { proxy in try await onOwnThread {
            for (option, host) in [("--socks5-hostname", "localhost"), ("--socks5", "127.0.0.1"), ("--socks4a", "localhost")] {
                let out = try curl([option, "127.0.0.1:\(proxy.port)", "http://\(host):\(web.port)/x"])
                #expect(out.succeeded, "\(option): \(out.stderrText)")
                #expect(out.stdoutText == "through the proxy\n", "\(option)")
            }
            #expect(web.connectionsAccepted == 3)
        } }
    }

    @Test("curl -x http://: a plain request arrives in origin form with Connection: close; CONNECT tunnels")
    func curlHTTP() async throws {
        let sshd = try SSHDFixture()
        let reflect = try TCPTestServer(behavior: .httpReflect)
        let web = try TCPTestServer(behavior: .http(body: "via CONNECT\n"))
        try await withProxy(sshd) { proxy in try await onOwnThread {
            let plain = try curl(["-x", "http://127.0.0.1:\(proxy.port)", "-H", "X-Test: 1", "--data-binary", "payload!",
                                  "http://127.0.0.1:\(reflect.port)/path?q=1"])
            #expect(plain.succeeded, "\(plain.stderrText)")
            let seen = plain.stdoutText
            #expect(seen.hasPrefix("POST /path?q=1 HTTP/1.1\r\n"), "\(seen)")
            #expect(seen.contains("X-Test: 1\r\n"))
            #expect(seen.contains("Connection: close\r\n"))
            #expect(!seen.lowercased().contains("proxy-connection"))
            #expect(seen.hasSuffix("\r\n\r\npayload!"))

            let tunnelled = try curl(["-p", "-x", "http://127.0.0.1:\(proxy.port)", "http://localhost:\(web.port)/"])
            #expect(tunnelled.succeeded, "\(tunnelled.stderrText)")
            #expect(tunnelled.stdoutText == "via CONNECT\n")
        } }
    }

    @Test("with TunnelProxyAuth: the right user and password pass (SOCKS5 and HTTP), wrong or none are refused, SOCKS4 too")
    func curlAuth() async throws {
        let sshd = try SSHDFixture()
        let web = try TCPTestServer(behavior: .http(body: "authorized\n"))
        try await withProxy(sshd, credentials: ProxyCredentials(user: "alice", password: "s3cret")) { proxy in try await onOwnThread {
            let url = "http://localhost:\(web.port)/"
            let good = try curl(["--socks5-hostname", "127.0.0.1:\(proxy.port)", "--proxy-user", "alice:s3cret", url])
            #expect(good.stdoutText == "authorized\n", "\(good.stderrText)")
            let goodHTTP = try curl(["-x", "http://127.0.0.1:\(proxy.port)", "--proxy-user", "alice:s3cret", url])
            #expect(goodHTTP.stdoutText == "authorized\n", "\(goodHTTP.stderrText)")
            let goodConnect = try curl(["-p", "-x", "http://127.0.0.1:\(proxy.port)", "--proxy-user", "alice:s3cret", url])
            #expect(goodConnect.stdoutText == "authorized\n", "\(goodConnect.stderrText)")

            let wrong = try curl(["--socks5-hostname", "127.0.0.1:\(proxy.port)", "--proxy-user", "alice:nope", url])
            #expect(!wrong.succeeded)
            let none = try curl(["--socks5-hostname", "127.0.0.1:\(proxy.port)", url])
            #expect(!none.succeeded)
            let socks4 = try curl(["--socks4a", "127.0.0.1:\(proxy.port)", url])
            #expect(!socks4.succeeded)
            let wrongHTTP = try curl(["-x", "http://127.0.0.1:\(proxy.port)", "--proxy-user", "alice:nope", "-o", "/dev/null",
                                      "-w", "%{http_code}", url])
            #expect(wrongHTTP.stdoutText == "407")
            #expect(web.connectionsAccepted == 3, "only the authorized requests reached the server")
        } }
    }

    @Test("the PAC file, fetched from the proxy port, points at that port")
    func pacFile() async throws {
        let sshd = try SSHDFixture()
        try await withProxy(sshd) { proxy in try await onOwnThread {
            let out = try curl(["-i", "http://127.0.0.1:\(proxy.port)/proxy.pac"])
            #expect(out.succeeded, "\(out.stderrText)")
            #expect(out.stdoutText.contains("application/x-ns-proxy-autoconfig"))
            #expect(out.stdoutText.contains("\"SOCKS5 127.0.0.1:\(proxy.port); SOCKS 127.0.0.1:\(proxy.port); PROXY 127.0.0.1:\(proxy.port)\""))
        } }
    }

    // MARK: - Reply codes, with a hand-written client

    /// SOCKS5 greeting (no auth) and CONNECT to `host:port` by name; returns the reply code and the connection.
    func socks5Connect(proxyPort: Int, host: String, port: Int, command: UInt8 = 1) throws -> (code: UInt8, connection: TCPTestConnection) {
        let connection = try TCPTestClient.connect(port: proxyPort)
        try connection.send([5, 1, 0] + [5, command, 0, 3, UInt8(host.utf8.count)] + Array(host.utf8) + [UInt8(port >> 8), UInt8(port & 0xFF)])
        let method = try connection.receive(exactly: 2)
        guard method == [5, 0] else { throw TestSupportError("method choice \(method)") }
        let reply = try connection.receive(exactly: 10)
        guard reply[0] == 5 else { throw TestSupportError("reply \(reply)") }
        return (reply[1], connection)
    }

    @Test("reply codes: success carries data; a closed port and an unknown name fail (4); BIND and UDP are 7; SOCKS4 0x5B; HTTP 502")
    func replyCodes() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let closed = try freeTCPPort()
        try await withProxy(sshd) { proxy in try await onOwnThread {
            let (ok, connection) = try socks5Connect(proxyPort: proxy.port, host: "127.0.0.1", port: echo.port)
            #expect(ok == 0)
            #expect(try connection.exchange(Array("ping".utf8)) == Array("ping".utf8))

            // sshd answers both with "connect failed" and libssh2 keeps only that code: host unreachable for both.
            let (refused, c1) = try socks5Connect(proxyPort: proxy.port, host: "127.0.0.1", port: closed)
            #expect(refused == 4)
            #expect(try c1.receiveAll(timeout: 10).isEmpty, "closed after the failure reply")
            let (unknown, _) = try socks5Connect(proxyPort: proxy.port, host: "nonexistent.invalid", port: 80)
            #expect(unknown == 4)
            let (bind, _) = try socks5Connect(proxyPort: proxy.port, host: "127.0.0.1", port: echo.port, command: 2)
            #expect(bind == 7)
            let (udp, _) = try socks5Connect(proxyPort: proxy.port, host: "127.0.0.1", port: echo.port, command: 3)
            #expect(udp == 7)

            let socks4 = try TCPTestClient.connect(port: proxy.port)
            try socks4.send([4, 1, UInt8(closed >> 8), UInt8(closed & 0xFF), 127, 0, 0, 1, 0])
            #expect(try socks4.receive(exactly: 8)[1] == 0x5B)
            let socks4ok = try TCPTestClient.connect(port: proxy.port)
            try socks4ok.send([4, 1, UInt8(echo.port >> 8), UInt8(echo.port & 0xFF), 127, 0, 0, 1, 0])
            #expect(try socks4ok.receive(exactly: 8)[1] == 0x5A)

            let http = try TCPTestClient.connect(port: proxy.port)
            try http.send(Array("CONNECT 127.0.0.1:\(closed) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            let answer = String(decoding: try http.receiveAll(timeout: 10), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"), "\(answer)")
            #expect(proxy.tunnel.counters.snapshot.connectionsActive <= 1)
        } }
    }

    // MARK: - Bad input

    @Test("garbage, truncated and oversized requests and a silent client each close alone; others keep working")
    func badInput() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await withProxy(sshd, handshakeTimeout: .seconds(2)) { proxy in try await onOwnThread {
            // A client that never finishes its handshake, held open across the others.
            let silent = try TCPTestClient.connect(port: proxy.port)
            try silent.send([5, 1])
            let started = Date()

            let garbage = try TCPTestClient.connect(port: proxy.port)
            try garbage.send([5, 0])  // SOCKS5 offering no method
            #expect(try garbage.receiveAll(timeout: 5).isEmpty)

            let wrongVersion = try TCPTestClient.connect(port: proxy.port)
            try wrongVersion.send([5, 1, 0, 6, 1, 0, 1, 127, 0, 0, 1, 0, 80])
            #expect(try wrongVersion.receiveAll(timeout: 5).count == 2 + 10)

            let http = try TCPTestClient.connect(port: proxy.port)
            try http.send(Array("\u{7F}ELF garbage\r\n\r\n".utf8))
            #expect(String(decoding: try http.receiveAll(timeout: 5), as: UTF8.self).hasPrefix("HTTP/1.1 400 "))

            // Answered while still sending: what it sends after the answer is read and dropped (no reset that could
            // cost it the answer), until its EOF.
            let oversized = try TCPTestClient.connect(port: proxy.port)
            try oversized.send(Array(("GET http://x/ HTTP/1.1\r\nX: " + String(repeating: "a", count: 100_000) + "\r\n\r\n").utf8), timeout: 5)
            oversized.shutdownWrite()
            let answer = String(decoding: try oversized.receiveAll(timeout: 5), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 431 "), "\(answer)")
            #expect(answer.hasSuffix("tunnel: request head too large\n"), "\(answer)")

            let truncated = try TCPTestClient.connect(port: proxy.port)
            try truncated.send([5, 1, 0, 5, 1, 0, 3, 20, 0x61])
            truncated.shutdownWrite()
            #expect(try truncated.receiveAll(timeout: 5) == [5, 0])

            // Meanwhile a good client works.
            let (code, good) = try socks5Connect(proxyPort: proxy.port, host: "127.0.0.1", port: echo.port)
            #expect(code == 0)
            let payload = TestData.pseudoRandom(count: 200_000, seed: 7)
            #expect(TestData.sha256Hex(try good.exchange(payload)) == TestData.sha256Hex(payload))

            // The silent one is closed by the deadline, not before.
            #expect(try silent.receiveAll(timeout: 10).isEmpty)
            #expect(Date().timeIntervalSince(started) >= 1.5)
            #expect(proxy.tunnel.counters.snapshot.connectionsActive == 0)
        } }
    }

    // MARK: - Load

    /// An echo server in a python3 process: 200 connections to the in-process `TCPTestServer` would be 200
    /// threads with a 256 KiB buffer each in this test process, whose memory other suites measure (the keepalive
    /// test checks this process's RSS).
    static func startPythonEcho() throws -> (process: RunningProcess, port: Int) {
        let script = """
            import socket, socketserver, sys
            class Echo(socketserver.BaseRequestHandler):
                def handle(self):
                    while True:
                        data = self.request.recv(65536)
                        if not data:
                            break
                        self.request.sendall(data)
                    self.request.shutdown(socket.SHUT_WR)
            class Server(socketserver.ThreadingTCPServer):
                daemon_threads = True
                allow_reuse_address = True
                request_queue_size = 256
            server = Server(("127.0.0.1", 0), Echo)
            print("port", server.server_address[1], flush=True)
            server.serve_forever()
            """
        let process = try ProcessRunner("python3", ["-c", script]).start()
        let line = try process.waitForLine(containing: "port ", in: .stdout, timeout: 10)
        guard let port = Int(line.dropFirst("port ".count).trimmingCharacters(in: .whitespaces)) else {
            _ = process.terminate()
            throw TestSupportError("python3 echo server did not print its port: \(process.outputSummary())")
        }
        return (process, port)
    }

    static let hasPython3 = (try? ProcessRunner("python3", ["-c", "pass"]).run(timeout: 10))?.succeeded == true

    @Test("200 concurrent proxied connections (SOCKS5, SOCKS4a, HTTP CONNECT mixed), checksummed payloads",
          .enabled(if: hasPython3, "needs python3 for its echo server (Tests/run installs it)"))
    func concurrent() async throws {
        let sshd = try SSHDFixture()
        let (echoProcess, echoPort) = try Self.startPythonEcho()
        defer { _ = echoProcess.terminate() }
        struct Echo { let port: Int }
        let echo = Echo(port: echoPort)
        try await withProxy(sshd) { proxy in try await onOwnThread {
            let count = 200
            let payloads = (0..<count).map { TestData.pseudoRandom(count: 10_000 + $0 * 131, seed: UInt64(1000 + $0)) }
            var connections: [TCPTestConnection] = []
            for index in 0..<count {
                let connection = try TCPTestClient.connect(port: proxy.port)
                let port = echo.port
                switch index % 3 {
                case 0: try connection.send([5, 1, 0, 5, 1, 0, 3, 9] + Array("localhost".utf8) + [UInt8(port >> 8), UInt8(port & 0xFF)])
                case 1: try connection.send([4, 1, UInt8(port >> 8), UInt8(port & 0xFF), 0, 0, 0, 1, 0] + Array("localhost".utf8) + [0])
                default: try connection.send(Array("CONNECT 127.0.0.1:\(port) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                }
                connections.append(connection)
            }
            // All handshakes in flight at once; now read every reply, send, and check what comes back.
            for (index, connection) in connections.enumerated() {
                switch index % 3 {
                case 0: #expect(try connection.receive(exactly: 12) == [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0], "connection \(index)")
                case 1: #expect(try connection.receive(exactly: 8)[1] == 0x5A, "connection \(index)")
                default:
                    let established = "HTTP/1.1 200 Connection established\r\n\r\n"
                    #expect(try connection.receive(exactly: established.utf8.count) == Array(established.utf8), "connection \(index)")
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
            #expect(proxy.tunnel.counters.snapshot.connectionsAccepted == count)
            try waitUntil(timeout: 10, "every proxied connection closed") { proxy.tunnel.counters.snapshot.connectionsActive == 0 }
        } }
    }

    @Test("a proxy on a Unix-domain socket (DynamicForward /path.sock) serves SOCKS5")
    func unixSocketProxy() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let path = sshd.directory + "/proxy.sock"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spec = DynamicForwardSpec(bind: .loopback, listenPort: 0, location: SourceLocation(file: "test", line: 1), listenSocketPath: path)
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: [], dynamicForwards: [spec], eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { _ in
            let connection = try TCPTestClient.connect(unixSocketPath: path)
            try connection.send([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(echo.port >> 8), UInt8(echo.port & 0xFF)])
            #expect(try connection.receive(exactly: 12) == [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            #expect(try connection.exchange(Array("over a socket".utf8)) == Array("over a socket".utf8))
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("a proxy client whose request comes before the session is up waits for it, then gets its answer and its bytes through")
    func clientWaitsForSession() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spec = DynamicForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: [], dynamicForwards: [spec], eventLoop: group.next(), logger: testLogger)
        // A frozen server: TCP connects, the SSH handshake waits.
        sshd.suspend()
        let starting = Task { try await tunnel.start() }
        do {
            try await waitUntilAsync(timeout: 10, "the proxy port to be bound") { !tunnel.boundAddresses.isEmpty }
            let port = try boundPorts(tunnel)[0]
            let client = try TCPTestClient.connect(port: port)
            // The handshake needs no session; the request (and the payload right behind it) waits for one.
            try client.send([5, 1, 0])
            #expect(try client.receive(exactly: 2) == [5, 0])
            try client.send([5, 1, 0, 1, 127, 0, 0, 1, UInt8(echo.port >> 8), UInt8(echo.port & 0xFF)] + Array("early bytes".utf8))
            sshd.resume()
            _ = try await starting.value
            #expect(try client.receive(exactly: 10) == [5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            #expect(try client.receive(exactly: 11) == Array("early bytes".utf8))
        } catch {
            sshd.resume()
            await tunnel.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("SOCKS5 to an IPv6 address, and curl -x to a closed port gets the proxy's 502 (plain request)",
          .enabled(if: hasIPv6Loopback, "needs an IPv6 loopback (::1)"))
    func ipv6AndPlainFailure() async throws {
        let sshd = try SSHDFixture()
        let echo6 = try TCPTestServer(behavior: .echo, address: "::1")
        let closed = try freeTCPPort()
        try await withProxy(sshd) { proxy in try await onOwnThread {
            let connection = try TCPTestClient.connect(port: proxy.port)
            let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
            try connection.send([5, 1, 0] + [5, 1, 0, 4] + loopback6 + [UInt8(echo6.port >> 8), UInt8(echo6.port & 0xFF)])
            #expect(try connection.receive(exactly: 12) == [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            #expect(try connection.exchange(Array("over v6".utf8)) == Array("over v6".utf8))

            let out = try curl(["-x", "http://127.0.0.1:\(proxy.port)", "-o", "-", "-w", "\n%{http_code}", "http://127.0.0.1:\(closed)/"])
            #expect(out.stdoutText.hasSuffix("\n502"), "\(out.stdoutText) \(out.stderrText)")
            #expect(out.stdoutText.contains("the SSH server could not connect to 127.0.0.1:\(closed)"))
        } }
    }
}
