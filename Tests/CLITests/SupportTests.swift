// Tests of TunnelTestSupport itself: the throwaway sshd (checked with the real OpenSSH client), the TCP test
// servers and client, process running, and the test data helpers.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
import Digests
#endif

// MARK: - TestData

@Suite struct TestDataTests {
    @Test func sha256KnownVectors() {
        #expect(TestData.sha256Hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(TestData.sha256Hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(TestData.sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(TestData.sha256Hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
            == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func sha256MatchesSha256sumAtBlockBoundariesAndInPieces() throws {
        for count in [1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 70_001] {
            let data = TestData.pseudoRandom(count: count, seed: UInt64(count))
            let expected = try ProcessRunner("sha256sum").runChecked(input: data).stdoutText.prefix(64)
            #expect(TestData.sha256Hex(data) == String(expected), "length \(count)")
            var hash = SHA256()
            var offset = 0
            var step = 1
            while offset < data.count {
                let end = min(data.count, offset + step)
                hash.update(Array(data[offset..<end]))
                offset = end
                step = step * 3 + 1
            }
            #expect(hash.finalizeHex() == String(expected), "length \(count) in pieces")
        }
    }

    @Test func pseudoRandomIsDeterministicAndStreamable() {
        let a = TestData.pseudoRandom(count: 10_000, seed: 42)
        #expect(a == TestData.pseudoRandom(count: 10_000, seed: 42))
        #expect(a != TestData.pseudoRandom(count: 10_000, seed: 43))
        #expect(Array(a.prefix(13)) == TestData.pseudoRandom(count: 13, seed: 42))
        var stream = PseudoRandomStream(seed: 42)
        var pieces: [UInt8] = []
        for size in [1, 7, 8, 3, 100, 0, 5000, 4881] { pieces += stream.next(size) }
        #expect(pieces == a)
        #expect(Set(a).count > 200)   // not degenerate
    }
}

// MARK: - helpers

@Suite struct HelperTests {
    @Test func waitUntilNamesWhatItWaitedFor() {
        let start = Date()
        do {
            try waitUntil(timeout: 0.2, "the moon to turn blue") { false }
            Issue.record("waitUntil did not throw")
        } catch {
            #expect("\(error)".contains("the moon to turn blue"))
        }
        #expect(Date().timeIntervalSince(start) < 2)
        var n = 0
        #expect(throws: Never.self) { try waitUntil(timeout: 5, "counter") { n += 1; return n > 3 } }
    }

    @Test func freeTCPPortCanBeBoundAndIsNotRepeated() throws {
        let ports = try (0..<20).map { _ in try freeTCPPort() }
        #expect(Set(ports).count == ports.count)
        let server = try TCPTestServer(behavior: .echo, port: ports[0])
        defer { server.stop() }
        #expect(server.port == ports[0])
    }
}

// MARK: - ProcessRunner

@Suite struct ProcessRunnerTests {
    @Test func runCapturesOutputExitAndEnvironment() throws {
        let out = try ProcessRunner("/bin/sh", ["-c", "echo out; echo err >&2; echo $TS_VALUE; exit 3"],
                                    extraEnvironment: ["TS_VALUE": "hello env"]).run()
        #expect(out.exit == .exited(3))
        #expect(out.stdoutText == "out\nhello env\n")
        #expect(out.stderrText == "err\n")
        let cat = try ProcessRunner("cat").runChecked(input: Array("piped".utf8))
        #expect(cat.stdoutText == "piped")
        let pwd = try ProcessRunner("pwd", currentDirectory: "/usr").runChecked()
        #expect(pwd.stdoutText == "/usr\n")
    }

    @Test func runTimesOutWithAClearError() throws {
        let start = Date()
        do {
            _ = try ProcessRunner("/bin/sh", ["-c", "echo started; exec sleep 30"]).run(timeout: 0.5)
            Issue.record("no timeout")
        } catch {
            #expect("\(error)".contains("did not finish within"))
            #expect("\(error)".contains("started"))
        }
        #expect(Date().timeIntervalSince(start) < 5)
        // A child that never reads a large input still times out instead of blocking the writer.
        let blocked = Date()
        #expect(throws: TestSupportError.self) {
            try ProcessRunner("sleep", ["30"]).run(input: [UInt8](repeating: 1, count: 4 << 20), timeout: 0.5)
        }
        #expect(Date().timeIntervalSince(blocked) < 5)
        #expect(throws: TestSupportError.self) { try ProcessRunner("/nonexistent/tool").run() }
        #expect(throws: TestSupportError.self) { try ProcessRunner("false").runChecked() }
    }

    @Test func startWaitForLinesSignalAndExit() throws {
        let p = try ProcessRunner("/bin/sh", ["-c", "trap 'echo bye >&2; exit 7' TERM; echo one >&2; echo two >&2; while :; do sleep 0.05; done"]).start()
        let line = try p.waitForLine(containing: "tw", timeout: 10)
        #expect(line == "two")
        #expect(p.isRunning)
        #expect(p.lines(.stderr) == ["one", "two"])
        p.signal(SIGTERM)
        #expect(try p.waitForExit(timeout: 10) == .exited(7))
        #expect(p.stderr.hasSuffix("bye\n"))

        let killed = try ProcessRunner("sleep", ["30"]).start()
        killed.signal(SIGKILL)
        #expect(try killed.waitForExit(timeout: 10) == .signaled(SIGKILL))
    }

    @Test func builtProductErrorsSayWhatToDo() throws {
        do {
            _ = try ProcessRunner.builtProduct("no-such-product-xyz", environmentOverride: "NO_SUCH_PRODUCT_BIN")
            Issue.record("found a product that does not exist")
        } catch {
            #expect("\(error)".contains("swift build --build-tests"))
            #expect("\(error)".contains("NO_SUCH_PRODUCT_BIN"))
        }
    }

    @Test func waitForLineFailsFastWhenTheProcessExits() throws {
        let p = try ProcessRunner("/bin/sh", ["-c", "echo nope >&2; exit 2"]).start()
        let start = Date()
        do {
            try p.waitForLine(containing: "ready", timeout: 20)
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("exited (exit status 2)"))
            #expect("\(error)".contains("nope"))
        }
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func childrenGetDefaultSignalsAndAnEmptyMask() throws {
        // Threads of the test runner block signals; a child must not inherit that.
        let out = try ProcessRunner("/bin/sh", ["-c", "grep -E '^(SigBlk|SigIgn)' /proc/self/status"]).runChecked()
        #expect(out.stdoutText.contains("SigBlk:\t0000000000000000"), "\(out.stdoutText)")
        // Only the classic signals 1...31 matter (glibc reserves 32 and 33 for itself).
        let ignored = out.stdoutText.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            .flatMap { UInt64($0.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(ignored.map { $0 & 0x7fff_ffff } == 0, "\(out.stdoutText)")
    }
}

// MARK: - TCP servers and client

@Suite struct TCPTests {
    @Test func echoMovesALotBothWaysAndHalfCloses() throws {
        let server = try TCPTestServer(behavior: .echo)
        defer { server.stop() }
        let data = TestData.pseudoRandom(count: 4 << 20, seed: 7)
        let c = try TCPTestClient.connect(port: server.port)
        #expect(try c.exchange(data) == data)
        c.close()

        let c2 = try TCPTestClient.connect(port: server.port)
        try c2.send(Array("ping".utf8))
        #expect(try c2.receive(exactly: 4) == Array("ping".utf8))
        c2.shutdownWrite()
        #expect(try c2.receiveAll(timeout: 10).isEmpty)   // EOF follows our EOF
        try waitUntil(timeout: 5, "2 accepted connections") { server.connectionsAccepted == 2 }
    }

    @Test func replyAfterEOFReportsLengthAndDigest() throws {
        let server = try TCPTestServer(behavior: .replyAfterEOF)
        defer { server.stop() }
        let data = TestData.pseudoRandom(count: 300_000, seed: 3)
        let c = try TCPTestClient.connect(port: server.port)
        try c.send(data)
        c.shutdownWrite()
        let reply = String(decoding: try c.receiveAll(), as: UTF8.self)
        #expect(reply == "bytes=300000 sha256=\(TestData.sha256Hex(data))\n")
    }

    @Test func sourceSendsTheDeterministicBytes() throws {
        let server = try TCPTestServer(behavior: .source(bytes: 1_000_003))
        defer { server.stop() }
        let c = try TCPTestClient.connect(port: server.port)
        let got = try c.receiveAll()
        #expect(got.count == 1_000_003)
        #expect(got == TestData.pseudoRandom(count: 1_000_003, seed: TCPTestServer.sourceSeed))
    }

    @Test func sinkCountsBytes() throws {
        let server = try TCPTestServer(behavior: .sink)
        defer { server.stop() }
        let c = try TCPTestClient.connect(port: server.port)
        #expect(try c.exchange(TestData.pseudoRandom(count: 2_000_000, seed: 1)) == Array("bytes=2000000\n".utf8))
    }

    @Test func httpAnswersCurlAndAPlainClient() throws {
        let server = try TCPTestServer(behavior: .http(body: "hello through the tunnel\n"))
        defer { server.stop() }
        let curl = try ProcessRunner("curl", ["-sS", "--max-time", "10", "http://127.0.0.1:\(server.port)/x"]).runChecked()
        #expect(curl.stdoutText == "hello through the tunnel\n")
        let c = try TCPTestClient.connect(port: server.port)
        try c.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        let response = String(decoding: try c.receiveAll(), as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.0 200 OK\r\n"))
        #expect(response.hasSuffix("\r\n\r\nhello through the tunnel\n"))
    }

    @Test(.enabled(if: hasIPv6Loopback, "needs an IPv6 loopback address (::1)"))
    func ipv6LoopbackWorks() throws {
        let server = try TCPTestServer(behavior: .echo, address: "::1")
        defer { server.stop() }
        let c = try TCPTestClient.connect(host: "::1", port: server.port)
        #expect(try c.exchange(Array("six".utf8)) == Array("six".utf8))
    }

    @Test func clientErrorsAreClearAndBounded() throws {
        let port = try freeTCPPort()
        do {
            _ = try TCPTestClient.connect(port: port, timeout: 2)
            Issue.record("connected to a closed port")
        } catch {
            #expect("\(error)".contains("127.0.0.1:\(port)"))
            #expect("\(error)".contains("refused"))
        }
        let server = try TCPTestServer(behavior: .sink)   // says nothing until EOF
        defer { server.stop() }
        let c = try TCPTestClient.connect(port: server.port)
        let start = Date()
        #expect(throws: TestSupportError.self) { try c.receive(upTo: 10, timeout: 0.3) }
        #expect(throws: TestSupportError.self) { try c.receiveAll(timeout: 0.3) }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func stopEndsOpenConnections() throws {
        let server = try TCPTestServer(behavior: .sink)
        let c = try TCPTestClient.connect(port: server.port)
        try waitUntil(timeout: 5, "the connection to be accepted") { server.activeConnections == 1 }
        server.stop()
        #expect(server.activeConnections == 0)
        #expect(try c.receiveAll(timeout: 5).isEmpty)
        #expect(!TCPTestClient.isAccepting(port: server.port))
        server.stop()   // idempotent
    }
}

// MARK: - SSHDFixture, checked with the real OpenSSH client

@Suite struct SSHDFixtureTests {
    func ssh(_ sshd: SSHDFixture, identity: String? = nil, _ args: [String], timeout: Double = 30) throws -> ProcessRunner.Output {
        try ProcessRunner("ssh", sshd.sshOptions(identity: identity) + [sshd.destination] + args).run(timeout: timeout)
    }

    @Test func opensshLogsInWithTheClientKeyAndChecksTheHostKey() throws {
        let sshd = try SSHDFixture()
        #expect(sshd.host == "127.0.0.1")
        #expect(sshd.hostPublicKeyLine.hasPrefix("ssh-ed25519 AAAA"))
        #expect(sshd.hostKeyFingerprint.hasPrefix("SHA256:"))
        #expect(try String(contentsOfFile: sshd.knownHostsPath, encoding: .utf8)
            == "[127.0.0.1]:\(sshd.port) \(sshd.hostPublicKeyLine)\n")
        let out = try ssh(sshd, ["echo", "hi-from-sshd"])
        #expect(out.succeeded, "\(out.stderrText)\n\(sshd.log)")
        #expect(out.stdoutText == "hi-from-sshd\n")
        #expect(sshd.log.contains("Accepted publickey for \(sshd.user)"))

        let other = "\(sshd.directory)/other_known_hosts"
        try sshd.writeKnownHosts(to: other)
        #expect(try String(contentsOfFile: other, encoding: .utf8) == sshd.knownHostsLine + "\n")
    }

    @Test func extraKeysAreAuthorizedAndUnauthorizedOnesAreNot() throws {
        let sshd = try SSHDFixture()
        let ecdsa = try sshd.makeClientKey(type: "ecdsa")
        #expect(try ssh(sshd, identity: ecdsa, ["true"]).succeeded, "\(sshd.log)")
        let stranger = try sshd.makeUnauthorizedKey()
        let refused = try ssh(sshd, identity: stranger, ["true"])
        #expect(refused.exit == .exited(255))
        #expect(refused.stderrText.contains("Permission denied"))
    }

    @Test func localForwardThroughOpenSSHMovesDataAndShowsInTheDebugLog() throws {
        var options = SSHDFixture.Options()
        options.logLevel = "DEBUG1"
        let sshd = try SSHDFixture(options: options)
        let echo = try TCPTestServer(behavior: .echo)
        defer { echo.stop() }
        let local = try freeTCPPort()
        let client = try ProcessRunner("ssh", sshd.sshOptions() + [
            "-v", "-N", "-o", "ExitOnForwardFailure=yes",
            "-L", "127.0.0.1:\(local):127.0.0.1:\(echo.port)", sshd.destination,
        ]).start()
        defer { client.terminate() }
        try client.waitForLine(containing: "Local forwarding listening on 127.0.0.1 port \(local)", timeout: 20)
        let data = TestData.pseudoRandom(count: 2 << 20, seed: 11)
        let c: TCPTestConnection
        do {
            c = try TCPTestClient.connect(port: local)
        } catch {
            Issue.record("\(error)\nssh: \(client.outputSummary())\nsshd: \(sshd.log)")
            return
        }
        #expect(try c.exchange(data) == data)
        #expect(echo.connectionsAccepted == 1)
        try waitUntil(timeout: 10, "sshd to log the direct-tcpip target") {
            sshd.log.contains("target 127.0.0.1 port \(echo.port)")
        }
    }

    @Test func stopEndsListenerAndSessionsAndIsIdempotent() throws {
        let sshd = try SSHDFixture()
        let client = try ProcessRunner("ssh", sshd.sshOptions() + [sshd.destination, "sleep 300"]).start()
        defer { client.terminate() }
        try waitUntil(timeout: 20, "an sshd session process") { sshd.processes().count >= 3 }
        let all = sshd.processes()
        let listener = try #require(sshd.listenerPID)
        sshd.stop()
        let alive = all.filter { ProcessTree.isAlive($0) }
        #expect(alive.isEmpty, "still alive: \(alive.map { ProcessTree.entry($0).map { "\($0)" } ?? "\($0)" })")
        #expect(ProcessTree.descendants(of: listener).isEmpty)
        #expect(sshd.listenerPID == nil)
        #expect(!TCPTestClient.isAccepting(port: sshd.port))
        #expect(try client.waitForExit(timeout: 10) != .exited(0))   // the session was cut
        sshd.stop()
    }

    @Test func restartKeepsPortAndHostKey() throws {
        let sshd = try SSHDFixture()
        let port = sshd.port
        let firstPID = try #require(sshd.listenerPID)
        try sshd.restart()
        #expect(sshd.port == port)
        #expect(sshd.listenerPID != firstPID)
        #expect(!ProcessTree.isAlive(firstPID))
        let out = try ssh(sshd, ["true"])   // strict host key checking with the old known_hosts
        #expect(out.succeeded, "\(out.stderrText)\n\(sshd.log)")
        #expect(sshd.log.contains("--- sshd restarted ---"))
    }

    @Test func restartOnATakenPortFailsClearlyAndWorksOnceItIsFree() throws {
        let sshd = try SSHDFixture()
        sshd.stop()
        #expect(sshd.processes().isEmpty)
        let squatter = try TCPTestServer(behavior: .sink, port: sshd.port)
        do {
            try sshd.restart()
            Issue.record("sshd started on a port that was taken")
        } catch {
            #expect("\(error)".contains("Address already in use"), "\(error)")
        }
        squatter.stop()
        try sshd.restart()
        let out = try ssh(sshd, ["true"])
        #expect(out.succeeded, "\(out.stderrText)\n\(sshd.log)")
    }

    @Test func suspendFreezesTheServerAndResumeThawsIt() throws {
        let sshd = try SSHDFixture()
        let listener = try #require(sshd.listenerPID)
        sshd.suspend()
        #expect(ProcessTree.entry(listener)?.state == "T")
        let c = try TCPTestClient.connect(port: sshd.port)   // the kernel still completes the handshake
        #expect(throws: TestSupportError.self) { try c.receive(upTo: 64, timeout: 0.5) }
        sshd.resume()
        let banner = String(decoding: try c.receive(upTo: 64, timeout: 10), as: UTF8.self)
        #expect(banner.hasPrefix("SSH-2.0-OpenSSH"))
        c.close()
        sshd.suspend()   // stop() must also end a frozen server
        sshd.stop()
        #expect(!ProcessTree.isAlive(listener))
    }

    @Test func extraConfigOverridesDefaultsAndOtherLoopbackAddressesWork() throws {
        var options = SSHDFixture.Options()
        options.listenAddress = "127.0.0.2"
        options.extraConfig = ["AllowTcpForwarding no"]
        let sshd = try SSHDFixture(options: options)
        #expect(sshd.knownHostsLine.hasPrefix("[127.0.0.2]:\(sshd.port) "))
        #expect(try ssh(sshd, ["true"]).succeeded, "\(sshd.log)")
        let refused = try ssh(sshd, ["-o", "ExitOnForwardFailure=yes", "-W", "127.0.0.1:9", "true"])
        #expect(!refused.succeeded)
    }

    @Test(.enabled(if: hasIPv6Loopback, "needs an IPv6 loopback address (::1)"))
    func ipv6LoopbackServer() throws {
        var options = SSHDFixture.Options()
        options.listenAddress = "::1"
        let sshd = try SSHDFixture(options: options)
        #expect(sshd.knownHostsLine.hasPrefix("[::1]:\(sshd.port) ssh-ed25519 "))
        #expect(sshd.hostAndPort == "[::1]:\(sshd.port)")
        let out = try ssh(sshd, ["true"])
        #expect(out.succeeded, "\(out.stderrText)\n\(sshd.log)")
    }

    @Test func deinitStopsTheServerAndRemovesTheDirectory() throws {
        var pid: pid_t = 0
        var dir = ""
        do {
            let sshd = try SSHDFixture()
            pid = try #require(sshd.listenerPID)
            dir = sshd.directory
        }
        #expect(!ProcessTree.isAlive(pid))
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}
