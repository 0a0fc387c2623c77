// The control socket end to end: the built `tunnel up`, a throwaway sshd, and `tunnel status/down/reload`
// (and a Python client written from the README) talking to it.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("control socket: status, down, reload (the binary)", .serialized)
struct ControlSocketTests {
    /// A private directory for one test's control socket.
    static func controlPath(_ sshd: SSHDFixture) -> String {
        let directory = sshd.directory + "/run"
        return directory + "/control.sock"
    }

    static func tunnel(_ arguments: [String], env: [String: String] = [:]) throws -> ProcessRunner {
        ProcessRunner(try CheckTool.tunnel(), arguments, extraEnvironment: env)
    }

    /// `tunnel status --json`, decoded.
    static func status(_ control: String) throws -> [String: Any] {
        let output = try tunnel(["status", "--json", "--control", control]).run(timeout: 30)
        guard output.succeeded else { throw TestSupportError("tunnel status failed: \(output.stderrText)") }
        guard let object = try JSONSerialization.jsonObject(with: Data(output.stdout)) as? [String: Any] else {
            throw TestSupportError("not a JSON object: \(output.stdoutText)")
        }
        return object
    }

    static func hosts(_ reply: [String: Any]) -> [[String: Any]] {
        ((reply["status"] as? [String: Any])?["hosts"] as? [[String: Any]]) ?? []
    }

    /// A Host block like UpCommandTests.writeConfig's, for appending.
    static func hostBlock(_ sshd: SSHDFixture, name: String, localPort: Int, target: Int) -> String {
        """
        Host \(name)
            HostName \(sshd.host)
            Port \(sshd.port)
            User \(sshd.user)
            IdentityFile \(sshd.clientKeyPath)
            UserKnownHostsFile \(sshd.knownHostsPath)
            LocalForward \(localPort) 127.0.0.1:\(target)

        """
    }

    @Test("TunnelSessions 2 under tunnel up: status says up (2/2 sessions), the JSON counts each session's connections, down stops both")
    func twoSessions() async throws { try await onOwnThread { try Self.twoSessionsBody() } }
    static func twoSessionsBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port, extra: ["TunnelSessions 2"])
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try waitUntil(timeout: 30, "both sessions up") {
            (try? Self.hosts(Self.status(control)).first?["sessionsUp"] as? Int) == 2
        }
        let held = try (0..<4).map { _ in try TCPTestClient.connect(port: localPort) }
        for connection in held {
            try connection.send(Array("hello".utf8))
            #expect(try connection.receive(exactly: 5) == Array("hello".utf8))
        }
        var host: [String: Any] = [:]
        try waitUntil(timeout: 10, "each session to carry two of the four connections") {
            host = (try? Self.hosts(Self.status(control)).first) ?? [:]
            return host["sessionConnections"] as? [Int] == [2, 2]
        }
        #expect(host["sessionsWanted"] as? Int == 2 && host["reconnects"] as? Int == 0)
        let table = try tunnel(["status", "--control", control]).run(timeout: 30)
        #expect(table.stdoutText.contains("(2/2 sessions)"), "\(table.stdoutText)")
        #expect(sshd.log.components(separatedBy: "Accepted publickey").count - 1 == 2)
        for connection in held { connection.close() }
        let down = try tunnel(["down", "--control", control]).run(timeout: 30)
        #expect(down.succeeded, "\(down.exit): \(down.stdoutText) \(down.stderrText)\n\(up.outputSummary())")
        #expect(try up.waitForExit(timeout: 20) == .exited(0), "\(up.outputSummary())")
    }

    @Test("status reports the bytes a real transfer moved, per forward; the JSON has the documented fields; the README's Python client works")
    func statusMatchesTransfer() async throws { try await onOwnThread { try Self.statusMatchesTransferBody() } }
    static func statusMatchesTransferBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)

        let payload = TestData.pseudoRandom(count: 300_000, seed: 7)
        let connection = try TCPTestClient.connect(port: localPort)
        try connection.send(payload)
        connection.shutdownWrite()
        let back = try connection.receiveAll(timeout: 30)
        connection.close()
        #expect(back == payload)

        // The connection's end reaches the counters a moment after the client saw it.
        var host: [String: Any] = [:]
        try waitUntil(timeout: 10, "status to count the closed connection") {
            host = (try? Self.hosts(Self.status(control)).first) ?? [:]
            let forward = (host["forwards"] as? [[String: Any]])?.first
            return forward?["activeConnections"] as? Int == 0 && forward?["totalConnections"] as? Int == 1
        }
        #expect(host["name"] as? String == "web")
        #expect(host["state"] as? String == "up")
        #expect(host["server"] as? String == "127.0.0.1:\(sshd.port)")
        #expect(host["hostKeyType"] as? String == "ssh-ed25519")
        #expect(host["hostKeyFingerprint"] as? String == sshd.hostKeyFingerprint)
        for key in ["cipherOut", "cipherIn", "macOut", "macIn", "since"] {
            #expect((host[key] as? String)?.isEmpty == false, "\(key) missing: \(host)")
        }
        #expect(host["reconnects"] as? Int == 0)
        #expect((host["uptimeSeconds"] as? Int).map { $0 >= 0 } == true, "uptime: \(host)")
        #expect(host["bytesOut"] as? Int == payload.count, "host totals: \(host)")
        #expect(host["bytesIn"] as? Int == payload.count, "host totals: \(host)")
        #expect(host["activeConnections"] as? Int == 0 && host["totalConnections"] as? Int == 1, "\(host)")
        #expect(host["openFailures"] as? Int == 0)
        let forward = try #require((host["forwards"] as? [[String: Any]])?.first)
        #expect(forward["id"] as? String == "L127.0.0.1:\(localPort)")
        #expect(forward["kind"] as? String == "local")
        #expect(forward["listen"] as? String == "127.0.0.1:\(localPort)")
        #expect(forward["target"] as? String == "127.0.0.1:\(echo.port)")
        #expect(forward["bytesOut"] as? Int == payload.count, "bytes sent by the test: \(forward)")
        #expect(forward["bytesIn"] as? Int == payload.count, "bytes echoed back: \(forward)")
        #expect(forward["openFailures"] as? Int == 0)

        // The human table.
        let table = try tunnel(["status", "--control", control]).runChecked(timeout: 30).stdoutText
        #expect(table.contains("web: up "), "\(table)")
        #expect(table.contains("127.0.0.1:\(localPort) -> 127.0.0.1:\(echo.port)"), "\(table)")
        #expect(table.contains("293.0 KiB"), "300000 bytes each way: \(table)")
        #expect(table.contains("0/1 conns, in 293.0 KiB, out 293.0 KiB"), "host totals: \(table)")
        #expect(table.split(separator: "\n").allSatisfy { $0.count <= 100 }, "\(table)")

        // A client written from the README alone.
        let client = sshd.directory + "/client.py"
        try readmeControlClient().write(toFile: client, atomically: true, encoding: .utf8)
        let python = try ProcessRunner("python3", [client, control, "status"]).runChecked(timeout: 30)
        let reply = try #require(try JSONSerialization.jsonObject(with: Data(python.stdout)) as? [String: Any])
        #expect(reply["ok"] as? Bool == true && reply["v"] as? Int == 1, "\(python.stdoutText)")
        #expect(Self.hosts(reply).first?["name"] as? String == "web")
        let bad = try ProcessRunner("python3", [client, control, "frobnicate"]).runChecked(timeout: 30).stdoutText
        #expect(bad.contains(#""ok":false"#) && bad.contains("unknown command"), "\(bad)")

        // Two requests on one connection are answered in order; a line that never ends is refused, not buffered.
        let two = #"import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"v":1,"cmd":"nope"}\n{"v":1,"cmd":"status"}\n'); f=s.makefile(); print(f.readline(), end=""); print(f.readline(), end="")"#
        let pair = try ProcessRunner("python3", ["-c", two, control]).runChecked(timeout: 30).stdoutText.split(separator: "\n")
        #expect(pair.count == 2 && pair[0].contains("unknown command") && pair[1].contains(#""hosts""#), "\(pair)")
        // (The server stops reading after 64 KiB: the rest of the send may fail, the reply is there to read.)
        let long = "import socket,sys\ns=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\ntry:\n    s.sendall(b'x' * 200000)\nexcept OSError:\n    pass\nprint(s.makefile().readline(), end='')\n"
        let tooLong = try ProcessRunner("python3", ["-c", long, control]).run(timeout: 30).stdoutText
        #expect(tooLong.contains("request longer than"), "\(tooLong)")

        // Socket and directory permissions.
        var info = stat()
        #expect(stat(control, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600, "socket mode \(String(info.st_mode & 0o777, radix: 8))")
        #expect(stat((control as NSString).deletingLastPathComponent, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o700, "directory mode \(String(info.st_mode & 0o777, radix: 8))")

        up.signal(SIGTERM)
        #expect(try up.waitForExit(timeout: 15) == .exited(0), "\(up.outputSummary())")
        #expect(!FileManager.default.fileExists(atPath: control), "the socket is removed on exit")
    }

    /// The Python block under "<!-- control-client -->" in README.md.
    static func readmeControlClient() throws -> String {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        guard let marker = text.range(of: "<!-- control-client -->"),
              let open = text.range(of: "```python\n", range: marker.upperBound..<text.endIndex),
              let close = text.range(of: "```", range: open.upperBound..<text.endIndex) else {
            throw TestSupportError("README.md has no Python block under <!-- control-client -->")
        }
        return String(text[open.upperBound..<close.lowerBound])
    }

    @Test("down HOST stops that host only; down stops the rest and the process exits 0")
    func downHostThenAll() async throws { try await onOwnThread { try Self.downHostThenAllBody() } }
    static func downHostThenAllBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let webPort = try freeTCPPortOutsideEphemeralRange()
        let dbPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: webPort, target: echo.port)
        try (String(contentsOfFile: config, encoding: .utf8) + "\n" + hostBlock(sshd, name: "db", localPort: dbPort, target: echo.port))
            .write(toFile: config, atomically: true, encoding: .utf8)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try waitUntil(timeout: 30, "both hosts to connect") { up.lines().filter { $0.contains("connected to") }.count == 2 }

        let unknown = try tunnel(["down", "nosuch", "--control", control]).run(timeout: 30)
        #expect(unknown.exit == .exited(1))
        #expect(unknown.stderrText.contains("no running host named nosuch"), "\(unknown.stderrText)")

        let down = try tunnel(["down", "web", "--control", control]).runChecked(timeout: 30)
        #expect(down.stdoutText == "web: stopped\n")
        #expect(!TCPTestClient.isAccepting(port: webPort), "web's listener is closed")
        #expect(try ReconnectTests.echoRoundTrip(port: dbPort, "db still up") == "db still up")
        #expect(try Self.hosts(Self.status(control)).map { $0["name"] as? String } == ["db"])

        try tunnel(["down", "--control", control]).runChecked(timeout: 30)
        #expect(try up.waitForExit(timeout: 20) == .exited(0), "\(up.outputSummary())")
        #expect(!TCPTestClient.isAccepting(port: dbPort))
    }

    @Test("reloads sent at once take turns: each host runs once, status lists it, and down stops every listener it bound")
    func concurrentReloadsTakeTurns() async throws { try await onOwnThread { try Self.concurrentReloadsTakeTurnsBody() } }
    static func concurrentReloadsTakeTurnsBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let webPort = try freeTCPPortOutsideEphemeralRange()
        let extraPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: webPort, target: echo.port)
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)

        // web's settings change (it restarts) and a host is added; four reloads arrive together. Interleaved, a
        // later reload would see web or extra half-done and bring it up a second time, outside the list.
        try (original.replacingOccurrences(of: "Host web\n", with: "Host web\n    ServerAliveInterval 7\n") + "\n"
             + hostBlock(sshd, name: "extra", localPort: extraPort, target: echo.port))
            .write(toFile: config, atomically: true, encoding: .utf8)
        let reloads = try (0..<4).map { _ in try tunnel(["reload", "--control", control]).start() }
        for reload in reloads {
            #expect(try reload.waitForExit(timeout: 60) == .exited(0), "\(reload.outputSummary())")
        }
        let changes = reloads.map(\.stdout).joined()
        #expect(changes.components(separatedBy: "web: restarted").count == 2, "web restarted once: \(changes)")
        #expect(changes.components(separatedBy: "extra: added").count == 2, "extra added once: \(changes)")
        #expect(try Self.hosts(Self.status(control)).compactMap { $0["name"] as? String } == ["web", "extra"])
        try waitUntil(timeout: 30, "web and extra to serve") {
            (try? ReconnectTests.echoRoundTrip(port: extraPort, "x")) == "x" && (try? ReconnectTests.echoRoundTrip(port: webPort, "w")) == "w"
        }

        // Nothing was bound outside the list: taking extra down frees its port while web runs on.
        try tunnel(["down", "extra", "--control", control]).runChecked(timeout: 30)
        #expect(!TCPTestClient.isAccepting(port: extraPort), "extra's port is free after down")
        #expect(try ReconnectTests.echoRoundTrip(port: webPort, "web still up") == "web still up")
    }

    @Test("reload adds a host while a checksummed transfer on another runs on; a broken config is refused with FILE:LINE and changes nothing")
    func reloadKeepsConnections() async throws { try await onOwnThread { try Self.reloadKeepsConnectionsBody() } }
    static func reloadKeepsConnectionsBody() throws {
        let sshd = try SSHDFixture()
        let total = 64 * 1024 * 1024
        let source = try TCPTestServer(behavior: .source(bytes: total))
        let echo = try TCPTestServer(behavior: .echo)
        let webPort = try freeTCPPortOutsideEphemeralRange()
        let newPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: webPort, target: source.port)
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)

        let connection = try TCPTestClient.connect(port: webPort)
        defer { connection.close() }
        var check = ReconnectTests.SourceCheck()
        // Read slowly at first, so the reload happens mid-transfer.
        check.take(try connection.receive(exactly: 1024 * 1024, timeout: 30))

        // A broken file: refused as a whole, with its FILE:LINE error; everything keeps running.
        try (original + "    LocalForward 80x db:5432\n" + hostBlock(sshd, name: "extra", localPort: newPort, target: echo.port))
            .write(toFile: config, atomically: true, encoding: .utf8)
        let refused = try tunnel(["reload", "--control", control]).run(timeout: 30)
        #expect(refused.exit == .exited(1))
        #expect(refused.stderrText.contains("\(config):9:"), "stderr: \(refused.stderrText)")
        #expect(!TCPTestClient.isAccepting(port: newPort), "nothing of the broken file was applied")

        // The good file: "extra" comes up, "web" (unchanged, though its lines moved) keeps its session.
        try ("# a comment that moves every line down\n" + original + "\n" + hostBlock(sshd, name: "extra", localPort: newPort, target: echo.port))
            .write(toFile: config, atomically: true, encoding: .utf8)
        let reload = try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(reload.stdoutText.contains("extra: added"), "\(reload.stdoutText)")
        #expect(reload.stdoutText.contains("web: unchanged"), "\(reload.stdoutText)")
        try waitUntil(timeout: 20, "extra to connect") { up.lines().filter { $0.contains("connected to") }.count == 2 }
        #expect(try ReconnectTests.echoRoundTrip(port: newPort, "via the new host") == "via the new host")

        // The rest of the transfer, checked against the same stream from where the first read stopped.
        let cut = check.takeRest(of: connection)
        #expect(cut == nil, "the transfer was cut: \(cut ?? "")")
        #expect(check.intact, "every byte as sent")
        #expect(check.count == total, "bytes: \(check.count) of \(total)")
        #expect(up.lines().filter { $0.contains("web: connected to") || $0.contains("web: reconnected") }.count == 1,
                "web kept its one session: \(up.outputSummary())")
        #expect(try Self.hosts(Self.status(control)).first?["reconnects"] as? Int == 0)
    }

    @Test("a second tunnel up on the same socket is refused with the first one's pid; a stale socket is replaced")
    func secondInstanceAndStaleSocket() async throws { try await onOwnThread { try Self.secondInstanceAndStaleSocketBody() } }
    static func secondInstanceAndStaleSocketBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let control = controlPath(sshd)
        // A socket nobody listens on any more, as a crashed `tunnel up` leaves it.
        try FileManager.default.createDirectory(atPath: (control as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try ProcessRunner("python3", ["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", control])
            .runChecked(timeout: 30)
        #expect(FileManager.default.fileExists(atPath: control))

        let config = try UpCommandTests.writeConfig(sshd, localPort: try freeTCPPortOutsideEphemeralRange(), target: echo.port)
        let first = try tunnel(["up", config, "--control", control]).start()
        defer { _ = first.terminate() }
        try first.waitForLine(containing: "connected to", timeout: 20)
        #expect(first.stderr.contains("removed a stale control socket \(control)"), "\(first.outputSummary())")

        let config2 = try UpCommandTests.writeConfig(sshd, localPort: try freeTCPPortOutsideEphemeralRange(), target: echo.port, name: "other")
        let second = try tunnel(["up", config2, "--control", control]).run(timeout: 30)
        #expect(second.exit == .exited(1))
        #expect(second.stderrText.contains("already running, pid \(first.pid)"), "\(second.stderrText)")
        #expect(try Self.hosts(Self.status(control)).map { $0["name"] as? String } == ["web"], "the first one is untouched")
    }

    @Test("tunnel up without a file reads $XDG_CONFIG_HOME/tunnel/tunnels.conf and says so; a lone argument that is no file is a host")
    func defaultConfigFile() async throws { try await onOwnThread { try Self.defaultConfigFileBody() } }
    static func defaultConfigFileBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let written = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let configHome = sshd.directory + "/config"
        try FileManager.default.createDirectory(atPath: configHome + "/tunnel", withIntermediateDirectories: true)
        let expected = configHome + "/tunnel/tunnels.conf"
        try FileManager.default.copyItem(atPath: written, toPath: expected)
        let up = try tunnel(["up", "web", "--control", controlPath(sshd)], env: ["XDG_CONFIG_HOME": configHome]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)
        #expect(up.stderr.contains("reading \(expected)"), "\(up.outputSummary())")
        #expect(try ReconnectTests.echoRoundTrip(port: localPort, "default") == "default")
    }

    @Test("another user is refused by the peer-credential check even when the socket's mode would let it in",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"),
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/runuser")
                       && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs /usr/sbin/runuser and /usr/bin/python3"))
    func otherUserRefused() async throws { try await onOwnThread { try Self.otherUserRefusedBody() } }
    static func otherUserRefusedBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        // Not under the fixture's directory (private to root): the other user must reach the socket file.
        var template = Array("/tmp/tunnel-ctl-XXXXXX".utf8CString)
        let directory = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let control = directory + "/run/control.sock"
        let config = try UpCommandTests.writeConfig(sshd, localPort: try freeTCPPortOutsideEphemeralRange(), target: echo.port)
        let up = try tunnel(["up", config, "--control", control]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)
        // Widen what the modes would allow, as a careless chmod would: only the credential check is left.
        chmod(directory, 0o755)
        chmod(directory + "/run", 0o755)
        chmod(control, 0o666)
        let user = try ThrowawayUser(password: "unused-\(getpid())")
        let script = #"import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'{"v":1,"cmd":"status"}\n'); print(s.makefile().readline(), end="")"#
        let output = try ProcessRunner("/usr/sbin/runuser", ["-u", user.name, "--", "/usr/bin/python3", "-c", script, control]).run(timeout: 30)
        #expect(output.stdoutText.contains(#""ok":false"#) && output.stdoutText.contains("refused"), "\(output.stdoutText) \(output.stderrText)")
        #expect(!output.stdoutText.contains("hosts"), "no status for another user")
        try waitUntil(timeout: 5, "the refusal to be logged") { up.stderr.contains("control socket: refused a client running as uid") }
    }

    @Test("SIGTERM: new clients are refused at once, an open connection keeps working until it ends, then exit 0; a second signal cuts the wait short")
    func gracefulShutdown() async throws { try await onOwnThread { try Self.gracefulShutdownBody() } }
    /// Send `text` on a connection that stays open, and read its echo.
    static func roundTrip(_ connection: TCPTestConnection, _ text: String) throws -> String {
        try connection.send(Array(text.utf8))
        return String(decoding: try connection.receive(exactly: text.utf8.count, timeout: 20), as: UTF8.self)
    }

    static func gracefulShutdownBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control, "--drain-time", "30"]).start()
        defer { _ = up.terminate() }
        try up.waitForLine(containing: "connected to", timeout: 20)

        let open = try TCPTestClient.connect(port: localPort)
        #expect(try Self.roundTrip(open, "before") == "before")
        up.signal(SIGTERM)
        try up.waitForLine(containing: "waiting up to 30 s for 1 open connection", timeout: 10)
        #expect(!TCPTestClient.isAccepting(port: localPort), "no new clients once stopping")
        #expect(try Self.roundTrip(open, "during") == "during", "the open connection still works")
        let closed = Date()
        open.close()
        #expect(try up.waitForExit(timeout: 10) == .exited(0), "\(up.outputSummary())")
        #expect(Date().timeIntervalSince(closed) < 5, "exits once the last connection ended, not after the drain time")

        // A second signal: the open connection is closed at once instead of after 30 s.
        let again = try tunnel(["up", config, "--control", control, "--drain-time", "30"]).start()
        defer { _ = again.terminate() }
        try again.waitForLine(containing: "connected to", timeout: 20)
        let held = try TCPTestClient.connect(port: localPort)
        defer { held.close() }
        #expect(try Self.roundTrip(held, "x") == "x")
        again.signal(SIGINT)
        try again.waitForLine(containing: "waiting up to 30 s", timeout: 10)
        let second = Date()
        again.signal(SIGINT)
        #expect(try again.waitForExit(timeout: 10) == .exited(0), "\(again.outputSummary())")
        #expect(Date().timeIntervalSince(second) < 5)
        #expect(again.stderr.contains("second signal: closing open connections now"))
    }

    @Test("sd_notify on an abstract socket: READY=1, STATUS=, WATCHDOG=1; SIGHUP and tunnel reload send RELOADING=1 then READY=1; STOPPING=1 on SIGTERM; status --watch")
    func systemdNotify() async throws { try await onOwnThread { try Self.systemdNotifyBody() } }
    static func systemdNotifyBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        // An abstract socket name (`@...`), as systemd uses for some services; the watchdog every 0.1 s (half of 0.2).
        let receiver = try DatagramReceiver(abstractName: "tunnel-test-notify-\(getpid())-\(sshd.port)")
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let control = controlPath(sshd)
        let up = try tunnel(["up", config, "--control", control],
                            env: ["NOTIFY_SOCKET": "@" + receiver.name, "WATCHDOG_USEC": "200000"]).start()
        defer { _ = up.terminate() }
        try receiver.wait(for: "READY=1", timeout: 30)
        try receiver.wait(for: "STATUS=1 of 1 host up", timeout: 10)
        try waitUntil(timeout: 10, "several WATCHDOG=1 pings") { receiver.messages.filter { $0.contains("WATCHDOG=1") }.count >= 3 }

        // SIGHUP reloads, like `tunnel reload`: a second host appears.
        let extraPort = try freeTCPPortOutsideEphemeralRange()
        try (String(contentsOfFile: config, encoding: .utf8) + "\n" + hostBlock(sshd, name: "extra", localPort: extraPort, target: echo.port))
            .write(toFile: config, atomically: true, encoding: .utf8)
        up.signal(SIGHUP)
        try up.waitForLine(containing: "reload: extra: added", timeout: 20)
        try receiver.wait(for: "RELOADING=1", timeout: 10)
        try receiver.wait(for: "STATUS=2 of 2 hosts up", timeout: 20)
        #expect(try ReconnectTests.echoRoundTrip(port: extraPort, "hup") == "hup")

        // `tunnel status --watch` (not a terminal: frames separated by a blank line) shows the throughput columns.
        let watch = try tunnel(["status", "--watch", "--control", control]).start()
        defer { _ = watch.terminate() }
        try waitUntil(timeout: 20, "two frames of tunnel status --watch") { watch.stdout.components(separatedBy: "IN/s").count >= 3 }
        #expect(watch.stdout.contains("extra: up"), "\(watch.stdout)")
        _ = watch.terminate()

        try tunnel(["reload", "--control", control]).runChecked(timeout: 30)
        #expect(receiver.messages.contains { $0.contains("MONOTONIC_USEC=") })
        try waitUntil(timeout: 10, "READY=1 after RELOADING=1") {
            let all = receiver.messages
            guard let reloading = all.firstIndex(where: { $0.contains("RELOADING=1") }) else { return false }
            return all[(reloading + 1)...].contains { $0.contains("READY=1") }
        }
        up.signal(SIGTERM)
        try receiver.wait(for: "STOPPING=1", timeout: 10)
        #expect(try up.waitForExit(timeout: 15) == .exited(0))
    }
}

/// A Unix datagram socket in the abstract namespace standing in for systemd's NOTIFY_SOCKET: collects every message on a thread.
final class DatagramReceiver: @unchecked Sendable {
    /// The abstract name (without the leading NUL that makes it abstract).
    let name: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var thread: Thread?

    init(abstractName: String) throws {
        name = abstractName
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = [0] + Array(abstractName.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            for (index, byte) in bytes.enumerated() { path[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw TestSupportError("bind @\(abstractName): \(errno)") }
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = recv(fd, &buffer, buffer.count, 0)
                if count <= 0 { return }
                let text = String(decoding: buffer[0..<count], as: UTF8.self)
                lock.lock(); received.append(text); lock.unlock()
            }
        }
        self.thread = thread
        thread.start()
    }

    deinit {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    var messages: [String] { lock.lock(); defer { lock.unlock() }; return received }

    func wait(for text: String, timeout: Double) throws {
        try waitUntil(timeout: timeout, "\(text) on NOTIFY_SOCKET (got: \(messages))") { messages.contains { $0.contains(text) } }
    }
}
