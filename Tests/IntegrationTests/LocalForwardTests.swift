import Foundation
import Logging
import NIOPosix
import SSH2
import Testing
import TunnelConfig
@testable import TunnelEngine
import TunnelTestSupport

/// Local forwards through a real OpenSSH sshd on 127.0.0.1, to real TCP servers behind it.
@Suite("Local forwards against a real sshd", .serialized)
struct LocalForwardTests {
    @Test("bytes round-trip intact, several MB, both directions")
    func roundTrip() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let source = try TCPTestServer(behavior: .source(bytes: 6_000_000))
        let sink = try TCPTestServer(behavior: .replyAfterEOF)
        try await withTunnel(sshd, forwards: [echo.port, source.port, sink.port]) { tunnel, ports in
            // echo: what goes up comes back down unchanged
            let payload = TestData.pseudoRandom(count: 8_000_000, seed: 1)
            let echoed = try TCPTestClient.connect(port: ports[0]).exchange(payload)
            #expect(echoed.count == payload.count)
            #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payload))

            // download: the server's deterministic stream arrives whole
            let downloaded = try TCPTestClient.connect(port: ports[1]).receiveAll()
            #expect(downloaded == TestData.pseudoRandom(count: 6_000_000, seed: TCPTestServer.sourceSeed))

            // upload: the server counts and hashes what it got
            let upload = TestData.pseudoRandom(count: 5_000_000, seed: 2)
            let reply = String(decoding: try TCPTestClient.connect(port: ports[2]).exchange(upload), as: UTF8.self)
            #expect(reply == "bytes=\(upload.count) sha256=\(TestData.sha256Hex(upload))\n")

            let counters = tunnel.counters.snapshot
            #expect(counters.bytesSent >= 13_000_000)
            #expect(counters.bytesReceived >= 14_000_000)
            #expect(counters.connectionsAccepted == 3)
        }
    }

    @Test("100 concurrent connections over one session")
    func manyConcurrentConnections() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [echo.port]) { tunnel, ports in
            let count = 100
            let payloads = (0..<count).map { TestData.pseudoRandom(count: 20_000 + $0 * 97, seed: UInt64($0)) }
            // Open all of them first so all 100 channels are live at once, then send, then read.
            let connections = try (0..<count).map { _ in try TCPTestClient.connect(port: ports[0]) }
            for (connection, payload) in zip(connections, payloads) {
                try connection.send(payload)
                connection.shutdownWrite()
            }
            for (index, connection) in connections.enumerated() {
                let echoed = try connection.receiveAll()
                #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payloads[index]), "connection \(index) got \(echoed.count) of \(payloads[index].count) bytes")
                connection.close()
            }
            #expect(echo.connectionsAccepted == count)
            try waitUntil(timeout: 10, "all forwarded connections to close") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    @Test("half-close: the client shuts its write side and still receives the full reply")
    func halfClose() async throws {
        let sshd = try SSHDFixture()
        let sink = try TCPTestServer(behavior: .replyAfterEOF)
        try await withTunnel(sshd, forwards: [sink.port]) { _, ports in
            let connection = try TCPTestClient.connect(port: ports[0])
            let request = Array("a request that ends with EOF".utf8)
            try connection.send(request)
            connection.shutdownWrite()
            // The server replies only after it saw our EOF: this hangs unless EOF crossed the tunnel.
            let reply = String(decoding: try connection.receiveAll(timeout: 20), as: UTF8.self)
            #expect(reply == "bytes=\(request.count) sha256=\(TestData.sha256Hex(request))\n")
        }
    }

    @Test("a closed target port closes that one client and the tunnel stays up")
    func targetPortClosed() async throws {
        let sshd = try SSHDFixture()
        let closedPort = try freeTCPPort()
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [closedPort, echo.port]) { tunnel, ports in
            let refused = try TCPTestClient.connect(port: ports[0])
            let got = try refused.receiveAll(timeout: 10)
            #expect(got.isEmpty, "a client of a refused channel should see the connection closed")
            try waitUntil(timeout: 5, "the open failure to be counted") { tunnel.counters.snapshot.channelOpenFailures == 1 }

            let payload = Array("still up".utf8)
            #expect(try TCPTestClient.connect(port: ports[1]).exchange(payload) == payload)
        }
    }

    @Test("a client that does not read holds the stream back instead of filling memory")
    func backpressure() async throws {
        let sshd = try SSHDFixture()
        let total = 200_000_000
        let source = try TCPTestServer(behavior: .source(bytes: total))
        try await withTunnel(sshd, forwards: [source.port]) { tunnel, ports in
            let slow = try TCPTestClient.connect(port: ports[0])
            // Let the server push until the pipeline is full (the count stops growing): if flow control were
            // missing, the tunnel would take all 200 MB before it stops.
            try waitUntilStable(timeout: 30, "the tunnel to stop taking bytes for a client that reads nothing") {
                tunnel.counters.snapshot.bytesReceived
            }
            let buffered = tunnel.counters.snapshot.bytesReceived
            // Bounded by the client's socket buffers + NIO's write watermark + one libssh2 window; far below 200 MB.
            #expect(buffered < 32_000_000, "the tunnel pulled \(buffered) bytes for a client that reads nothing")
            // Then the stream resumes and arrives whole (integrity is the round-trip test's job; this is about flow).
            var count = 0
            while true {
                let chunk = try slow.receive(upTo: 1 << 20, timeout: 30)
                if chunk.isEmpty { break }
                count += chunk.count
            }
            #expect(count == total)
        }
    }

    @Test("a port already in use is reported with its owner, and nothing stays bound")
    func portInUse() async throws {
        let sshd = try SSHDFixture()
        let squatter = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let free = try freeTCPPortOutsideEphemeralRange()
        let specs = [free, squatter.port].enumerated().map { index, port in
            ForwardSpec(bind: .address("127.0.0.1"), listenPort: port, targetHost: "127.0.0.1", targetPort: 9,
                        location: SourceLocation(file: "test", line: index + 1))
        }
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: specs, eventLoop: group.next(), logger: testLogger)
        do {
            _ = try await tunnel.start()
            Issue.record("bind should have failed")
        } catch {
            let message = "\(error)"
            #expect(message.contains("cannot listen on 127.0.0.1:\(squatter.port)"))
            #expect(message.contains("already in use by"))
            // The owner is this test process. Other tests spawn processes meanwhile, and a child between fork and
            // exec still holds every descriptor of ours, so it may be found first: then it must be our child.
            if let range = message.range(of: "(pid "), let end = message[range.upperBound...].firstIndex(of: ")"),
               let named = pid_t(message[range.upperBound..<end]) {
                let ours = named == getpid() || ProcessTree.entry(named).map { $0.parent == getpid() } ?? true
                #expect(ours, "the owner named is neither this test process nor its child: \(message)")
            } else {
                // No owner named: the /proc scan raced with the descriptors of parallel tests. Ask once more, now
                // that the scan is not racing our own bind.
                let again = PortOwner.listener(onPort: squatter.port)?.pid
                #expect(again == getpid() || again.flatMap { ProcessTree.entry($0) }?.parent == getpid(),
                        "the owner is this test process: \(message); asked again: \(String(describing: again))")
            }
        }
        // The listener that did bind was released again.
        #expect(!TCPTestClient.isAccepting(port: free))
        try await group.shutdownGracefully()
    }

    @Test("a client that connects while the session is still being set up is served once it is up")
    func clientWaitsForSession() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Port 0: the kernel picks a free port (a fixed "free" port can be taken by another test meanwhile).
        let tunnel = makeTunnel(sshd, targets: [echo.port], group: group)
        // A frozen server: TCP connects (the kernel accepts), the SSH handshake waits.
        sshd.suspend()
        let starting = Task { try await tunnel.start() }
        // Async wait: start() needs a thread of the concurrency pool meanwhile, which other suites may be blocking.
        try await waitUntilAsync(timeout: 10, "the listener to be bound") { !tunnel.boundAddresses.isEmpty }
        let port = try boundPorts(tunnel)[0]
        var client: TCPTestConnection?
        try waitUntil(timeout: 10, "the listener on \(port) to accept") {
            client = try? TCPTestClient.connect(port: port, timeout: 1)
            return client != nil
        }
        let payload = Array("sent before the session was up".utf8)
        try client!.send(payload)
        client!.shutdownWrite()
        sshd.resume()
        _ = try await starting.value
        #expect(try client!.receiveAll(timeout: 20) == payload)
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("stop closes the listeners")
    func stopClosesListeners() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // A port no other test can be handed meanwhile (a port from bind(0) can be, once it is free again).
        let port = try freeTCPPortOutsideEphemeralRange()
        let spec = ForwardSpec(bind: .address("127.0.0.1"), listenPort: port, targetHost: "127.0.0.1",
                               targetPort: echo.port, location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: [spec], eventLoop: group.next(), logger: testLogger)
        _ = try await tunnel.start()
        #expect(try boundPorts(tunnel) == [port])
        #expect(TCPTestClient.isAccepting(port: port))
        await tunnel.stop()
        #expect(!TCPTestClient.isAccepting(port: port))
        try await group.shutdownGracefully()
    }

    @Test("IPv6 loopback bind address and target", .enabled(if: hasIPv6Loopback, "needs an IPv6 loopback address (::1)"))
    func ipv6() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo, address: "::1")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let spec = ForwardSpec(bind: .address("::1"), listenPort: 0, targetHost: "::1", targetPort: echo.port,
                               location: SourceLocation(file: "test", line: 1))
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: [spec], eventLoop: group.next(), logger: testLogger)
        _ = try await tunnel.start()
        let port = try boundPorts(tunnel)[0]
        let payload = Array("over IPv6".utf8)
        #expect(try TCPTestClient.connect(host: "::1", port: port).exchange(payload) == payload)
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}

// MARK: - Helpers shared by the integration tests

let testLogger: Logger = {
    var logger = Logger(label: "tunnel-tests")
    logger.logLevel = ProcessInfo.processInfo.environment["TUNNEL_TEST_LOG"] != nil ? .debug : .critical
    return logger
}()

func settings(_ sshd: SSHDFixture, identity: String? = nil, policy: HostKeyPolicy? = nil) -> ConnectionSettings {
    ConnectionSettings(
        name: "test", hostName: sshd.host, port: sshd.port, user: sshd.user,
        identityFiles: [identity ?? sshd.clientKeyPath],
        hostKeyPolicy: policy ?? HostKeyPolicy(mode: .strict, knownHostsFiles: [sshd.knownHostsPath]),
        connectTimeoutSeconds: 15)
}

func makeTunnel(_ sshd: SSHDFixture, targets: [Int], group: MultiThreadedEventLoopGroup,
                identity: String? = nil, policy: HostKeyPolicy? = nil) -> HostTunnel {
    // Port 0: the kernel picks a free port, read back from boundAddresses; no race with other tests.
    let specs = targets.enumerated().map { index, port in
        ForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, targetHost: "127.0.0.1", targetPort: port,
                    location: SourceLocation(file: "test", line: index + 1))
    }
    return HostTunnel(settings: settings(sshd, identity: identity, policy: policy), localForwards: specs,
                      eventLoop: group.next(), logger: testLogger)
}

func boundPorts(_ tunnel: HostTunnel) throws -> [Int] {
    try tunnel.boundAddresses.map { address in
        guard let port = address.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw TestSupportError("cannot read a port from \(address)")
        }
        return port
    }
}

/// A started tunnel with one local forward per target port, on an event loop of its own.
struct RunningTunnel {
    let group: MultiThreadedEventLoopGroup
    let tunnel: HostTunnel
    let ports: [Int]

    static func start(_ sshd: SSHDFixture, targets: [Int]) async throws -> RunningTunnel {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = makeTunnel(sshd, targets: targets, group: group)
        _ = try await tunnel.start()
        return RunningTunnel(group: group, tunnel: tunnel, ports: try boundPorts(tunnel))
    }

    /// Stop the tunnel, then its event loop.
    func finish() async throws {
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}

/// Start a tunnel with one local forward per target port, run `body` with the local ports, stop everything.
func withTunnel(_ sshd: SSHDFixture, forwards targets: [Int],
                _ body: (HostTunnel, [Int]) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let tunnel = makeTunnel(sshd, targets: targets, group: group)
    try await withStarted(tunnel, on: group) { _ in try await body(tunnel, try boundPorts(tunnel)) }
}

/// Start `tunnel`, run `body` with what its session reported, then stop the tunnel and shut `group` down, also when
/// the start or `body` throws.
func withStarted(_ tunnel: HostTunnel, on group: MultiThreadedEventLoopGroup,
                 _ body: (SessionInfo) async throws -> Void) async throws {
    do {
        try await body(try await tunnel.start())
    } catch {
        await tunnel.stop()
        try? await group.shutdownGracefully()
        throw error
    }
    await tunnel.stop()
    try await group.shutdownGracefully()
}

/// Unix-domain sockets on either side of a local forward (OpenSSH's `LocalForward /a.sock host:port` and
/// `LocalForward port /path.sock`, the second as a `direct-streamlocal@openssh.com` channel).
@Suite("Unix-socket forwards against a real sshd", .serialized)
struct SocketForwardTests {
    func socketTunnel(_ sshd: SSHDFixture, _ specs: [ForwardSpec], group: MultiThreadedEventLoopGroup,
                      mask: Int? = nil, unlink: Bool = false) -> HostTunnel {
        var settings = settings(sshd)
        if let mask { settings.streamLocalBindMask = mask }
        settings.streamLocalBindUnlink = unlink
        return HostTunnel(settings: settings, localForwards: specs, eventLoop: group.next(), logger: testLogger)
    }

    func spec(_ listener: ForwardListener, _ target: ForwardTarget) -> ForwardSpec {
        ForwardSpec(listener: listener, target: target, location: SourceLocation(file: "test", line: 1))
    }

    @Test("a TCP port to a socket behind sshd carries several MB both ways, and half-close")
    func tcpToSocket() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo, unixSocketPath: sshd.directory + "/echo.sock")
        let sink = try TCPTestServer(behavior: .replyAfterEOF, unixSocketPath: sshd.directory + "/sink.sock")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = socketTunnel(sshd, [spec(.tcp(bind: .address("127.0.0.1"), port: 0), .unixSocket(path: echo.address)),
                                         spec(.tcp(bind: .address("127.0.0.1"), port: 0), .unixSocket(path: sink.address))], group: group)
        _ = try await tunnel.start()
        let ports = try boundPorts(tunnel)
        let payload = TestData.pseudoRandom(count: 3_000_000, seed: 11)
        let echoed = try TCPTestClient.connect(port: ports[0]).exchange(payload)
        #expect(TestData.sha256Hex(echoed) == TestData.sha256Hex(payload))
        let reply = String(decoding: try TCPTestClient.connect(port: ports[1]).exchange(payload), as: UTF8.self)
        #expect(reply == "bytes=\(payload.count) sha256=\(TestData.sha256Hex(payload))\n")
        await tunnel.stop()
        try await group.shutdownGracefully()
    }

    @Test("a socket of our own: mode 0666 less StreamLocalBindMask, an existing file refused unless StreamLocalBindUnlink, removed on stop")
    func socketListener() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let path = sshd.directory + "/ours.sock"
        let forward = spec(.unixSocket(path: path), .tcp(host: "127.0.0.1", port: echo.port))

        let tunnel = socketTunnel(sshd, [forward], group: group)  // OpenSSH's default mask 0177
        _ = try await tunnel.start()
        #expect(tunnel.boundAddresses == [path])
        #expect(try mode(path) == 0o600)
        let payload = Array("over a socket we listen on".utf8)
        #expect(try TCPTestClient.connect(unixSocketPath: path).exchange(payload) == payload)
        await tunnel.stop()
        #expect(!FileManager.default.fileExists(atPath: path), "removed on stop")

        // A socket file left behind (by a program that died): refused by default, as OpenSSH does; replaced with
        // StreamLocalBindUnlink yes.
        let previous = try TCPTestServer(behavior: .echo, unixSocketPath: path)
        previous.stop()
        #expect(FileManager.default.fileExists(atPath: path))
        let refused = socketTunnel(sshd, [forward], group: group)
        do {
            _ = try await refused.start()
            Issue.record("bound over an existing file without StreamLocalBindUnlink")
        } catch let error as TunnelError {
            #expect("\(error)".contains("StreamLocalBindUnlink"), "\(error)")
        }
        let replacing = socketTunnel(sshd, [forward], group: group, mask: 0o022, unlink: true)
        _ = try await replacing.start()
        #expect(try mode(path) == 0o644)
        #expect(try TCPTestClient.connect(unixSocketPath: path).exchange(payload) == payload)
        await replacing.stop()

        // Something that is not a socket is never removed, whatever StreamLocalBindUnlink says.
        try "precious".write(toFile: path, atomically: true, encoding: .utf8)
        let notSocket = socketTunnel(sshd, [forward], group: group, unlink: true)
        do {
            _ = try await notSocket.start()
            Issue.record("bound over a regular file")
        } catch let error as TunnelError {
            #expect("\(error)".contains("not a socket"), "\(error)")
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
        try await group.shutdownGracefully()
    }

    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? Int ?? -1) & 0o777
    }
}
