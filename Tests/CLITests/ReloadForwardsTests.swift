// Reload that changes only a Host block's forwards, end to end: the built `tunnel up`, a throwaway sshd, and
// `tunnel reload`. The host keeps its session and its other forwards' open connections.
import Foundation
import Testing
import TunnelTestSupport

@Suite("reload: forwards added and removed in a running host (the binary)", .serialized)
struct ReloadForwardsTests {
    static func tunnel(_ arguments: [String]) throws -> ProcessRunner { try ControlSocketTests.tunnel(arguments) }

    static func forwards(_ control: String) throws -> [[String: Any]] {
        (try ControlSocketTests.hosts(ControlSocketTests.status(control)).first?["forwards"] as? [[String: Any]]) ?? []
    }

    @Test("a checksummed transfer on forward A runs on while a reload adds forward B to the same host (B serves), then a reload removes B (its port is freed, its open connection stays)")
    func addAndRemoveForwardKeepsSession() async throws { try await onOwnThread { try Self.addAndRemoveBody() } }
    static func addAndRemoveBody() throws {
        let sshd = try SSHDFixture()
        let total = 64 * 1024 * 1024
        let source = try TCPTestServer(behavior: .source(bytes: total))
        let echo = try TCPTestServer(behavior: .echo)
        let portA = try freeTCPPortOutsideEphemeralRange()
        let portB = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: portA, target: source.port)
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let control = ControlSocketTests.controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)

        let download = try TCPTestClient.connect(port: portA)
        defer { download.close() }
        var check = ReconnectTests.SourceCheck()
        // Read slowly, so both reloads happen mid-transfer.
        check.take(try download.receive(exactly: 1024 * 1024, timeout: 30))

        // B added to the same Host block (the file's last lines belong to it).
        try (original + "    LocalForward \(portB) 127.0.0.1:\(echo.port)\n").write(toFile: config, atomically: true, encoding: .utf8)
        let added = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(added.stdoutText.contains("web: forwards changed, session kept"), "\(added.stdoutText)")
        #expect(added.stdoutText.contains("+localhost:\(portB) -> 127.0.0.1:\(echo.port)"), "\(added.stdoutText)")
        #expect(try ReconnectTests.echoRoundTrip(port: portB, "through B") == "through B")
        let listed = try forwards(control)
        #expect(listed.map { $0["id"] as? String } == ["L127.0.0.1:\(portA)", "L127.0.0.1:\(portB)"], "\(listed)")
        #expect(listed.last?["totalConnections"] as? Int == 1, "B's own counts: \(listed)")
        #expect(listed.first?["activeConnections"] as? Int == 1, "A's download still open: \(listed)")
        check.take(try download.receive(exactly: 1024 * 1024, timeout: 30))

        // A connection left open on B, then B removed: the port is freed, that connection still works.
        let onB = try TCPTestClient.connect(port: portB)
        defer { onB.close() }
        try onB.send(Array("before".utf8))
        #expect(try onB.receive(exactly: 6) == Array("before".utf8))
        try original.write(toFile: config, atomically: true, encoding: .utf8)
        let removed = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(removed.stdoutText.contains("web: forwards changed, session kept (-localhost:\(portB)"), "\(removed.stdoutText)")
        try waitUntil(timeout: 10, "B's port to be closed") { !TCPTestClient.isAccepting(port: portB) }
        try onB.send(Array("after".utf8))
        #expect(try onB.receive(exactly: 5) == Array("after".utf8), "B's open connection outlived its listener")
        #expect(try forwards(control).map { $0["id"] as? String } == ["L127.0.0.1:\(portA)"])

        // The rest of the download, checked against the same stream from where the reads stopped.
        var cut: String?
        while true {
            do {
                let chunk = try download.receive(upTo: 256 * 1024, timeout: 60)
                if chunk.isEmpty { break }
                check.take(chunk)
            } catch {
                cut = "\(error)"
                break
            }
        }
        #expect(cut == nil, "the transfer was cut: \(cut ?? "")")
        #expect(check.intact, "every byte as sent")
        #expect(check.count == total, "bytes: \(check.count) of \(total)")
        #expect(up.lines().filter { $0.contains("web: connected to") || $0.contains("web: reconnected") }.count == 1,
                "web kept its one session: \(up.outputSummary())")
        #expect(try ControlSocketTests.hosts(ControlSocketTests.status(control)).first?["reconnects"] as? Int == 0)

        // B can be added back (its port really was released, and the host's record says it is gone).
        try (original + "    LocalForward \(portB) 127.0.0.1:\(echo.port)\n").write(toFile: config, atomically: true, encoding: .utf8)
        let again = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(again.stdoutText.contains("+localhost:\(portB)"), "\(again.stdoutText)")
        #expect(try ReconnectTests.echoRoundTrip(port: portB, "B again") == "B again")
    }
}
