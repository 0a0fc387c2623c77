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
        let cut = check.takeRest(of: download)
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

    @Test("a reload adds a RemoteForward to a running host (the server listens, its connections reach the target here) and removes it (cancel-tcpip-forward frees the server's port), on the same session, an open connection untouched")
    func addAndRemoveRemoteForward() async throws { try await onOwnThread { try Self.remoteBody() } }
    static func remoteBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let remotePort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let control = ControlSocketTests.controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)
        let kept = try TCPTestClient.connect(port: localPort)
        defer { kept.close() }
        try kept.send(Array("one".utf8))
        #expect(try kept.receive(exactly: 3) == Array("one".utf8))

        try (original + "    RemoteForward 127.0.0.1:\(remotePort) 127.0.0.1:\(echo.port)\n").write(toFile: config, atomically: true, encoding: .utf8)
        let added = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(added.stdoutText.contains("web: forwards changed, session kept (+remote "), "\(added.stdoutText)")
        try waitUntil(timeout: 20, "the server to listen on \(remotePort)") { TCPTestClient.isAccepting(port: remotePort) }
        #expect(try ReconnectTests.echoRoundTrip(port: remotePort, "via the server") == "via the server")
        var listed: [[String: Any]] = []
        do {
            try waitUntil(timeout: 10, "the remote forward's connection in status") {
                listed = (try? forwards(control)) ?? []
                let remote = listed.first { $0["id"] as? String == "R127.0.0.1:\(remotePort)" }
                // Two connections: the wait's probe (isAccepting) and the echo.
                return remote?["totalConnections"] as? Int == 2 && remote?["activeConnections"] as? Int == 0
                    && remote?["bytesIn"] as? Int == "via the server".utf8.count && remote?["bytesOut"] as? Int == "via the server".utf8.count
            }
        } catch {
            throw TestSupportError("\(error): \(listed)")
        }

        try original.write(toFile: config, atomically: true, encoding: .utf8)
        let removed = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(removed.stdoutText.contains("(-remote "), "\(removed.stdoutText)")
        try waitUntil(timeout: 10, "the server to stop listening on \(remotePort)") { !TCPTestClient.isAccepting(port: remotePort) }
        #expect(try forwards(control).map { $0["id"] as? String } == ["L127.0.0.1:\(localPort)"])
        try kept.send(Array("two".utf8))
        #expect(try kept.receive(exactly: 3) == Array("two".utf8), "the open connection on the other forward carried on")
        #expect(up.lines().filter { $0.contains("web: connected to") || $0.contains("web: reconnected") }.count == 1,
                "web kept its one session: \(up.outputSummary())")

        // Added back: the server listens again (its port really was released).
        try (original + "    RemoteForward 127.0.0.1:\(remotePort) 127.0.0.1:\(echo.port)\n").write(toFile: config, atomically: true, encoding: .utf8)
        try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        try waitUntil(timeout: 20, "the server to listen on \(remotePort) again") { TCPTestClient.isAccepting(port: remotePort) }
        #expect(try ReconnectTests.echoRoundTrip(port: remotePort, "again") == "again")
    }
}
