// Receive windows, end to end: the memory rule for clients that do not keep up, measured on the `tunnel` process.
import Foundation
import Testing
import TunnelTestSupport

@Suite("Receive windows through the binary", .serialized)
struct ReceiveWindowUpTests {
    @Test("20 clients that read nothing while the server pushes: tunnel's RSS grows by at most 3 MB each")
    func slowReadersHoldOnlyTheBaseWindow() async throws {
        let (grownKiB, running, output) = try await onOwnThread { () throws -> (Int, Bool, String) in
            let sshd = try SSHDFixture()
            let source = try TCPTestServer(behavior: .source(bytes: 100_000_000))
            let localPort = try freeTCPPortOutsideEphemeralRange()
            let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: source.port, name: "push")
            let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", "--log-level", "warning", config]).start()
            defer { _ = tunnel.terminate() }
            try waitUntil(timeout: 20, "tunnel up to listen on \(localPort)") {
                !tunnel.isRunning || TCPTestClient.isAccepting(port: localPort)
            }
            // Warm up: one client takes a few MB at full speed, so the baseline holds what any transfer needs.
            let warm = try TCPTestClient.connect(port: localPort)
            var taken = 0
            while taken < 8_000_000 {
                let chunk = try warm.receive(upTo: 1 << 20, timeout: 30)
                if chunk.isEmpty { break }
                taken += chunk.count
            }
            warm.close()
            guard taken >= 8_000_000 else { throw TestSupportError("the warm-up download stopped after \(taken) bytes") }
            let rssMiB = { (ProcessStats.rssKiB(tunnel.pid) ?? 0) / 1024 }
            try waitUntilStable(timeout: 30, quiet: 1, "tunnel's RSS after the warm-up", rssMiB)
            let before = ProcessStats.rssKiB(tunnel.pid) ?? 0

            let clients = try (0..<20).map { _ in try TCPTestClient.connect(port: localPort) }
            defer { clients.forEach { $0.close() } }
            // The server pushes until every pipeline is full: the client's socket buffers, NIO's watermark and
            // one receive window each. Only the last two are tunnel's memory.
            try waitUntilStable(timeout: 120, quiet: 3, "tunnel's RSS with 20 clients that read nothing", rssMiB)
            return ((ProcessStats.rssKiB(tunnel.pid) ?? 0) - before, tunnel.isRunning, tunnel.outputSummary())
        }
        #expect(running, "\(output)")
        print("20 clients that read nothing: tunnel's RSS grew by \(grownKiB) KiB")
        // Under a sanitizer RSS measures the sanitizer too (ASan keeps freed memory in quarantine, TSan its
        // shadow, and a TSan run once measured 0.9 MiB of growth where a plain one measured 49): both bounds are for
        // the plain build, and under a sanitizer the test checks only that tunnel came through it (races are the
        // sanitizer's to report). Tests/run-sanitizers sets TUNNEL_TEST_SANITIZER.
        guard ProcessInfo.processInfo.environment["TUNNEL_TEST_SANITIZER"] == nil else { return }
        #expect(grownKiB * 1024 <= 20 * 3_000_000,
                "RSS grew by \(grownKiB / 1024) MiB for 20 clients that read nothing: more than 3 MB each")
        // Otherwise nothing was measured: the windows were not filled.
        #expect(grownKiB >= 10 * 1024, "RSS grew by only \(grownKiB) KiB: did the server push at all?")
    }
}
