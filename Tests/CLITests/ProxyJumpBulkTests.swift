// Bulk bytes through jump hosts: checksummed both ways, with the rate printed next to the same transfer with
// fewer hops (every path shares the test's NamespaceBridge into the namespace, so the difference is the hops').
import Foundation
import Testing
import TunnelTestSupport

@Suite("ProxyJump bulk transfer (the binary)", .serialized,
       .enabled(if: JumpLab.skipReason == nil, "needs root and iproute2 to make a network namespace"))
struct ProxyJumpBulkTests {
    static let size = 32 * 1024 * 1024

    @Test("32 MiB down and 32 MiB up, intact, with 0, 1 and 2 jump hosts before the server")
    func bulkBothWays() async throws { try await onOwnThread { try Self.bulkBody() } }
    static func bulkBody() throws {
        let lab = try JumpLab(inner: 2, logLevel: "INFO")
        defer { lab.stop() }
        let mid = lab.inner[0], db = lab.inner[1]
        let source = try TCPTestServer(behavior: .source(bytes: size), unixSocketPath: db.directory + "/source.sock")
        let sink = try TCPTestServer(behavior: .replyAfterEOF, unixSocketPath: db.directory + "/sink.sock")
        defer { source.stop(); sink.stop() }
        // The same two sockets reached from three hosts: the bastion itself, db through the bastion, db through both.
        let routes: [(name: String, lines: [String])] = [
            ("direct", ["HostName 127.0.0.1", "Port \(lab.bridge.port)"]),
            ("onehop", ["HostName 127.0.0.1", "Port \(mid.port)", "ProxyJump bastion"]),
            ("twohops", ["HostName 127.0.0.1", "Port \(db.port)", "ProxyJump bastion,127.0.0.1:\(mid.port)"]),
        ]
        var body: [String] = []
        var ports: [String: (down: Int, up: Int)] = [:]
        for route in routes {
            let down = try freeTCPPortOutsideEphemeralRange(), up = try freeTCPPortOutsideEphemeralRange()
            ports[route.name] = (down, up)
            body += ["Host \(route.name)"] + route.lines.map { "    " + $0 }
                + ["    LocalForward \(down) \(db.directory)/source.sock", "    LocalForward \(up) \(db.directory)/sink.sock"]
        }
        let config = try lab.writeConfig(body, name: "bulk")
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        try waitUntil(timeout: 60, "three hosts connected") { tunnel.lines().filter { $0.contains(": connected to") }.count == 3 }

        let payload = TestData.pseudoRandom(count: size, seed: 42)
        let digest = TestData.sha256Hex(payload)
        var report: [String] = []
        for route in routes {
            let (downPort, upPort) = ports[route.name]!
            var started = Date()
            let connection = try TCPTestClient.connect(port: downPort)
            let (check, error) = ReconnectTests.download(connection, timeout: 120)
            connection.close()
            let downSeconds = Date().timeIntervalSince(started)
            #expect(error == nil && check.intact && check.count == size, "\(route.name) download: \(check.count) bytes, intact \(check.intact), \(error ?? "EOF")")

            started = Date()
            let upload = try TCPTestClient.connect(port: upPort)
            try upload.send(payload, timeout: 120)
            upload.shutdownWrite()
            let reply = String(decoding: try upload.receiveAll(timeout: 120), as: UTF8.self)
            upload.close()
            let upSeconds = Date().timeIntervalSince(started)
            #expect(reply == "bytes=\(size) sha256=\(digest)\n", "\(route.name) upload: \(reply)")
            let mb = Double(size) / 1_000_000
            report.append("\(route.name): down \(Int(mb / downSeconds)) MB/s, up \(Int(mb / upSeconds)) MB/s")
        }
        print("ProxyJump bulk (32 MiB each way, through the test bridge): " + report.joined(separator: "; "))
        #expect(tunnel.isRunning)
    }
}
