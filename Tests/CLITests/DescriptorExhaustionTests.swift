// `tunnel up` with a low open-file limit (ulimit -n): when accept fails with EMFILE the listener pauses and logs
// once instead of retrying accept in a busy loop, held clients go on, and the waiting client is served once
// descriptors are free again. The real binary in its own process: the limit must not touch the test runner.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("tunnel up out of file descriptors", .serialized)
struct DescriptorExhaustionTests {
    @Test("EMFILE: one log line, no busy accept loop, held clients go on, the waiting client is served after some close")
    func outOfDescriptors() async throws { try await onOwnThread { try Self.outOfDescriptorsBody() } }

    static func outOfDescriptorsBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        defer { echo.stop() }
        let localPort = try freeTCPPort()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let limit = 40
        // A control socket of its own: started through /bin/sh, ProcessRunner does not give it a fresh
        // XDG_RUNTIME_DIR, and the default socket is shared with any other `tunnel up` on the machine.
        let tunnel = try ProcessRunner("/bin/sh", ["-c", "ulimit -n \(limit) && exec \"$0\" \"$@\"", try CheckTool.tunnel(), "up",
                                                   "--control", sshd.directory + "/fds.sock", config]).start()
        defer { _ = tunnel.terminate() }
        _ = try tunnel.waitForLine(containing: "connected to", timeout: 30)

        // Hold clients (each proven accepted by a round trip) until one is not accepted.
        var held: [TCPTestConnection] = []
        defer { held.forEach { $0.close() } }
        var waiting: TCPTestConnection?
        for index in 0...limit {
            let client = try TCPTestClient.connect(port: localPort)
            let message = Array("client \(index)\n".utf8)
            try client.send(message)
            if let answer = try? client.receive(exactly: message.count, timeout: 3) {
                #expect(answer == message)
                held.append(client)
            } else {
                waiting = client
                break
            }
        }
        let pending = try #require(waiting, "all \(held.count) clients were accepted under a limit of \(limit) descriptors")
        defer { pending.close() }
        #expect(held.count > 10, "the tunnel should serve clients up to its limit")

        _ = try tunnel.waitForLine(containing: "cannot accept a client: Too many open files", timeout: 10)
        let before = try ProcessStats.cpuMilliseconds(tunnel.pid)
        Thread.sleep(forTimeInterval: 2)   // the CPU used in these 2 s is what is checked
        let spent = try ProcessStats.cpuMilliseconds(tunnel.pid) - before
        // A busy accept loop used 1,500 ms of these 2,000; a pausing listener a few ticks at most.
        #expect(spent < 400, "tunnel used \(spent) ms of CPU in 2 s while out of descriptors (busy accept loop?)")
        #expect(tunnel.lines().filter { $0.contains("cannot accept a client") }.count == 1, "one line per episode: \(tunnel.stderr)")

        for (index, client) in held.enumerated() {
            let message = Array("again \(index)\n".utf8)
            try client.send(message)
            #expect(try client.receive(exactly: message.count, timeout: 10) == message, "held client \(index) stopped working")
        }

        // Free descriptors: the waiting client's round trip (sent long ago) now comes back.
        for client in held.suffix(5) { client.close() }
        held.removeLast(5)
        let pendingMessage = Array("client \(held.count + 5)\n".utf8)
        #expect(try pending.receive(exactly: pendingMessage.count, timeout: 10) == pendingMessage)
        _ = try tunnel.waitForLine(containing: "accepting clients again", timeout: 10)
        #expect(tunnel.isRunning)
    }
}
