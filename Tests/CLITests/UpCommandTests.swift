// `tunnel up`, end to end: the built binary, a throwaway sshd, a real HTTP server behind it, signals.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("tunnel up (the binary)", .serialized)
struct UpCommandTests {
    /// A config for `sshd` with one LocalForward from a free local port to `target`.
    static func writeConfig(_ sshd: SSHDFixture, localPort: Int, target: Int, name: String = "web",
                            extra: [String] = []) throws -> String {
        let path = sshd.directory + "/\(name).conf"
        let lines = [
            "# written by UpCommandTests",
            "Host \(name)",
            "    HostName \(sshd.host)",
            "    Port \(sshd.port)",
            "    User \(sshd.user)",
            "    IdentityFile \(sshd.clientKeyPath)",
            "    UserKnownHostsFile \(sshd.knownHostsPath)",
            "    LocalForward \(localPort) 127.0.0.1:\(target)",
        ] + extra.map { "    " + $0 }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func httpGet(port: Int) throws -> String {
        let connection = try TCPTestClient.connect(port: port)
        defer { connection.close() }
        try connection.send(Array("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".utf8))
        return String(decoding: try connection.receiveAll(timeout: 20), as: UTF8.self)
    }

    @Test("serves HTTP through the tunnel, then SIGTERM closes everything and exits 0", arguments: [SIGTERM, SIGINT])
    func upServesAndStopsCleanly(signal: Int32) throws {
        let sshd = try SSHDFixture()
        let http = try TCPTestServer(behavior: .http(body: "hello through the tunnel\n"))
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, localPort: localPort, target: http.port)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }

        let ready = try tunnel.waitForLine(containing: "connected to", timeout: 20)
        #expect(ready == "web: connected to 127.0.0.1:\(sshd.port) (ssh-ed25519 \(sshd.hostKeyFingerprint)), forwarding 127.0.0.1:\(localPort) -> 127.0.0.1:\(http.port)")

        let response = try Self.httpGet(port: localPort)
        #expect(response.hasPrefix("HTTP/1."))
        #expect(response.hasSuffix("hello through the tunnel\n"))

        tunnel.signal(signal)
        let exit = try tunnel.waitForExit(timeout: 10)
        #expect(exit == .exited(0), "\(tunnel.outputSummary())")
        #expect(!TCPTestClient.isAccepting(port: localPort), "the listener must be closed after stop")
        // The session was ended politely: sshd logs our SSH_MSG_DISCONNECT.
        try waitUntil(timeout: 5, "sshd to log the client's disconnect") { sshd.log.contains("Received disconnect from 127.0.0.1") }
    }

    @Test("a bad config line: exit 1 with FILE:LINE, before any connection")
    func badConfig() throws {
        let sshd = try SSHDFixture()
        let config = try Self.writeConfig(sshd, localPort: 8080, target: 80, extra: ["LocalForward 80x db:5432"])
        let output = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).run(timeout: 20)
        #expect(output.exit == .exited(1))
        #expect(output.stderrText.contains("\(config):9:"), "stderr: \(output.stderrText)")
    }

    @Test("config warnings read FILE:LINE: warning:, and a named host without forwards is an error")
    func warningsAndHostsWithoutForwards() throws {
        let sshd = try SSHDFixture()
        let config = try Self.writeConfig(sshd, localPort: try freeTCPPort(), target: 80, extra: ["ForwardAgent yes"])
        let text = try String(contentsOfFile: config, encoding: .utf8) + "Host plain\n    HostName 127.0.0.1\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "plain"]).run(timeout: 20)
        #expect(output.exit == .exited(1))
        #expect(output.stderrText.contains("\(config):9: warning: ForwardAgent is an OpenSSH option tunnel does not use; ignored"),
                "stderr: \(output.stderrText)")
        #expect(output.stderrText.contains("plain has no LocalForward, RemoteForward or DynamicForward"), "stderr: \(output.stderrText)")
    }

    @Test("an unknown host name is an error that lists the known ones")
    func unknownHostName() throws {
        let sshd = try SSHDFixture()
        let config = try Self.writeConfig(sshd, localPort: 8080, target: 80)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "nosuchhost"]).run(timeout: 20)
        #expect(output.exit == .exited(1))
        #expect(output.stderrText.contains("no Host named nosuchhost (known: web)"), "stderr: \(output.stderrText)")
    }

    @Test("an encrypted key's passphrase comes from SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force), as with OpenSSH")
    func askpass() throws {
        let sshd = try SSHDFixture()
        let key = try sshd.makeClientKey(type: "ecdsa", passphrase: "s3cret phrase")
        let askpass = sshd.directory + "/askpass"
        try "#!/bin/sh\necho \"$1\" >> \(sshd.directory)/askpass.log\necho 's3cret phrase'\n".write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o755)
        let http = try TCPTestServer(behavior: .http(body: "through an encrypted key\n"))
        let localPort = try freeTCPPortOutsideEphemeralRange()
        var config = try String(contentsOfFile: try Self.writeConfig(sshd, localPort: localPort, target: http.port), encoding: .utf8)
        config = config.replacingOccurrences(of: sshd.clientKeyPath, with: key)
        let path = sshd.directory + "/askpass.conf"
        try config.write(toFile: path, atomically: true, encoding: .utf8)

        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", path],
                                       extraEnvironment: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force"]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "connected to", timeout: 20)
        #expect(try Self.httpGet(port: localPort).hasSuffix("through an encrypted key\n"))
        let asked = try String(contentsOfFile: sshd.directory + "/askpass.log", encoding: .utf8)
        #expect(asked == "Enter passphrase for key '\(key)': \n", "asked once, with OpenSSH's prompt")
    }

    /// A config for a password-only login as `user` (`PubkeyAuthentication no`: the fixture's key would be accepted
    /// for any user, its AuthorizedKeysFile being one file).
    static func writePasswordConfig(_ sshd: SSHDFixture, user: String, localPort: Int, target: Int) throws -> String {
        let path = sshd.directory + "/password.conf"
        let lines = [
            "Host web",
            "    HostName \(sshd.host)",
            "    Port \(sshd.port)",
            "    User \(user)",
            "    PubkeyAuthentication no",
            "    UserKnownHostsFile \(sshd.knownHostsPath)",
            "    LocalForward \(localPort) 127.0.0.1:\(target)",
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("a password comes from SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force), asked during authentication with OpenSSH's prompt",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func passwordFromAskpass() throws {
        let user = try ThrowawayUser(password: "askpass pw")
        defer { user.remove() }
        var options = SSHDFixture.Options()
        options.extraConfig = ["PasswordAuthentication yes"]
        let sshd = try SSHDFixture(options: options)
        let askpass = sshd.directory + "/askpass"
        try "#!/bin/sh\necho \"$1\" >> \(sshd.directory)/askpass.log\necho 'askpass pw'\n".write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o755)
        let http = try TCPTestServer(behavior: .http(body: "through a password\n"))
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let path = try Self.writePasswordConfig(sshd, user: user.name, localPort: localPort, target: http.port)

        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", path],
                                       extraEnvironment: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force"]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "connected to", timeout: 20)
        #expect(try Self.httpGet(port: localPort).hasSuffix("through a password\n"))
        let asked = try String(contentsOfFile: sshd.directory + "/askpass.log", encoding: .utf8)
        #expect(asked == "\(user.name)@127.0.0.1's password: \n", "asked once, with OpenSSH's prompt")
        #expect(sshd.log.contains("Accepted password for \(user.name)"), "\(sshd.log)")
    }

    @Test("a server that wants a password and nobody to ask (no terminal, no SSH_ASKPASS): said once, with what to do, not retried")
    func passwordWithNobodyToAsk() throws {
        var options = SSHDFixture.Options()
        options.extraConfig = ["PasswordAuthentication yes"]
        let sshd = try SSHDFixture(options: options)
        var path = try Self.writePasswordConfig(sshd, user: "nobody-to-ask", localPort: try freeTCPPortOutsideEphemeralRange(), target: 9)
        // A short cap, so a retry (which must not happen) would come within the test.
        let text = try String(contentsOfFile: path, encoding: .utf8)
        path = sshd.directory + "/nobody.conf"
        try ("IgnoreUnknown Tunnel*\n" + text + "    TunnelReconnectDelay 1\n    TunnelReconnectMaxDelay 1\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", path], extraEnvironment: ["SSH_ASKPASS": ""]).start()
        defer { _ = tunnel.terminate() }
        let line = try tunnel.waitForLine(containing: "authentication failed", timeout: 20)
        #expect(line.contains("web: error: needs authentication: authentication failed for nobody-to-ask@127.0.0.1:\(sshd.port): tried password"), "\(line)")
        #expect(line.contains("nobody can be asked here: use a key (IdentityFile) or the agent"), "\(line)")
        #expect(line.contains("SSH_ASKPASS_REQUIRE=force"), "the front end says how it could ask: \(line)")
        #expect(line.contains("not retrying until tunnel is restarted"), "\(line)")
        // Nobody can answer, so no retry loop: one attempt in sshd's log, however long we look.
        let attempts = { sshd.log.components(separatedBy: "Invalid user nobody-to-ask").count - 1 }
        try waitUntilStable(timeout: 20, quiet: 4, "sshd's count of attempts to settle", attempts)
        #expect(attempts() == 1, "\(sshd.log)")
        #expect(tunnel.lines().filter { $0.contains("authentication failed") }.count == 1, "\(tunnel.lines())")
        #expect(!sshd.log.contains("Failed password"), "\(sshd.log)")
    }

    @Test("a ProxyJump host whose jump host does not resolve: the error names the hop; never connected to directly")
    func proxyJumpHopNamed() throws {
        let sshd = try SSHDFixture()
        let config = try Self.writeConfig(sshd, localPort: try freeTCPPort(), target: 80, extra: ["ProxyJump nonexistent.invalid"])
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        let line = try tunnel.waitForLine(containing: "web via nonexistent.invalid", timeout: 20)
        #expect(line.contains("web: error: web via nonexistent.invalid: nonexistent.invalid: cannot connect to nonexistent.invalid:22: cannot resolve host name"), "\(line)")
        #expect(!sshd.log.contains("Accepted publickey"), "it must not have connected directly")
    }

    @Test("a changed host key: said once with the offered fingerprint and the fix, never accepted, retried only at the cap")
    func changedHostKey() throws {
        let sshd = try SSHDFixture()
        let otherLine = try SSHDFixture.publicKeyLine(try sshd.makeUnauthorizedKey() + ".pub")
        let knownHosts = sshd.directory + "/changed_known_hosts"
        try "[127.0.0.1]:\(sshd.port) \(otherLine)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, localPort: localPort, target: echo.port,
                                          extra: ["StrictHostKeyChecking accept-new", "ConnectTimeout 2"])
        let text = try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: sshd.knownHostsPath, with: knownHosts)
        try text.write(toFile: config, atomically: true, encoding: .utf8)

        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        let line = try tunnel.waitForLine(containing: "HAS CHANGED", timeout: 20)
        #expect(line.contains(sshd.hostKeyFingerprint))
        #expect(line.contains("\(knownHosts):1"))
        // The fix, added by TunnelService to the engine's statement of the problem.
        #expect(line.contains("remove the old entry with: ssh-keygen -R '[127.0.0.1]:\(sshd.port)' -f \(knownHosts)"), "\(line)")
        // Retried at the cap (30 to 60 s), never in a tight loop, and never accepted: a client is not forwarded.
        #expect(line.contains("retrying in"), "\(line)")
        let client = try TCPTestClient.connect(port: localPort)
        try client.send(Array("must not reach the target".utf8))
        #expect((try? client.receive(timeout: 4)) ?? [] == [], "nothing may come back through an untrusted server")
        client.close()
        #expect(sshd.log.components(separatedBy: "by 127.0.0.1 port").count - 1 == 1,
                "one attempt only so far: \(sshd.log)")
        #expect(try String(contentsOfFile: knownHosts, encoding: .utf8).components(separatedBy: "\n").count == 2,
                "known_hosts left as it was")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0), "\(tunnel.outputSummary())")
        #expect(!TCPTestClient.isAccepting(port: localPort))
    }

    @Test("Ctrl-C while the server never answers the handshake stops at once, with exit 0", arguments: [SIGINT, SIGTERM])
    func signalDuringSetup(signal: Int32) throws {
        let sshd = try SSHDFixture()
        sshd.suspend()  // TCP connects (the kernel accepts), but no SSH banner ever comes
        defer { sshd.resume() }
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, localPort: localPort, target: 80)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        // Listeners are bound before the session is set up: once the port accepts, setup is under way.
        try waitUntil(timeout: 10, "tunnel up to bind its listener") { TCPTestClient.isAccepting(port: localPort) }
        let signalled = Date()
        tunnel.signal(signal)
        // Before, the signal was read only after every session's setup ended: 30 s (ConnectTimeout) here.
        let exit = try tunnel.waitForExit(timeout: 5)
        #expect(exit == .exited(0), "\(tunnel.outputSummary())")
        #expect(Date().timeIntervalSince(signalled) < 5)
        #expect(!TCPTestClient.isAccepting(port: localPort), "the listener must be closed after stop")
    }

    @Test("Unix-socket forwards both ways through the binary; a remote socket listener is skipped with a one-line warning while the rest comes up")
    func socketForwards() throws {
        let sshd = try SSHDFixture()
        let http = try TCPTestServer(behavior: .http(body: "from a socket\n"), unixSocketPath: sshd.directory + "/app.sock")
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let localSocket = sshd.directory + "/local.sock"
        let config = try Self.writeConfig(sshd, localPort: localPort, target: 80, extra: [
            "LocalForward \(localSocket) 127.0.0.1:\(echo.port)",
            "RemoteForward /tmp/never-\(localPort).sock /tmp/x.sock",
        ])
        // The writeConfig forward (to port 80) is replaced by one to the socket behind sshd.
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "LocalForward \(localPort) 127.0.0.1:80", with: "LocalForward \(localPort) \(http.address)")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "connected to", timeout: 20)
        #expect(try Self.httpGet(port: localPort).hasSuffix("from a socket\n"), "TCP port to a socket behind sshd")
        let payload = Array("through our own socket".utf8)
        #expect(try TCPTestClient.connect(unixSocketPath: localSocket).exchange(payload) == payload)
        try waitUntil(timeout: 5, "the remote socket forward's warning") { tunnel.stderr.contains("cannot accept forwarded-streamlocal") }
        #expect(tunnel.stderr.contains("\(config):10: warning: RemoteForward"), "\(tunnel.outputSummary())")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0))
        #expect(!FileManager.default.fileExists(atPath: localSocket), "the socket file is removed on stop")
    }

    @Test("DynamicForward through the binary: curl via SOCKS5 and HTTP, the PAC file, and a garbage client logged at debug level")
    func dynamicForward() throws {
        let sshd = try SSHDFixture()
        let http = try TCPTestServer(behavior: .http(body: "proxied by tunnel up\n"))
        let proxyPort = try freeTCPPortOutsideEphemeralRange()
        let config = try Self.writeConfig(sshd, localPort: 0, target: 80, extra: [
            "DynamicForward 127.0.0.1:\(proxyPort)", "TunnelProxyAuth alice:s3cret",
        ])
        // A proxy only: the writeConfig LocalForward goes, and the IgnoreUnknown line keeps the file valid for ssh -F.
        let text = "IgnoreUnknown Tunnel*\n" + (try String(contentsOfFile: config, encoding: .utf8))
            .replacingOccurrences(of: "    LocalForward 0 127.0.0.1:80\n", with: "")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", "--log-level", "debug", config]).start()
        defer { _ = tunnel.terminate() }
        let ready = try tunnel.waitForLine(containing: "connected to", timeout: 20)
        #expect(ready.hasSuffix("forwarding 127.0.0.1:\(proxyPort) (SOCKS and HTTP proxy)"), "\(ready)")
        #expect(!tunnel.stderr.contains("IgnoreUnknown"), "no warning when the IgnoreUnknown line is there: \(tunnel.outputSummary())")

        let noProxyEnv = ["http_proxy": "", "https_proxy": "", "all_proxy": "", "HTTP_PROXY": "", "ALL_PROXY": ""]
        for proxy in ["socks5h://alice:s3cret@127.0.0.1:\(proxyPort)", "http://alice:s3cret@127.0.0.1:\(proxyPort)"] {
            let curl = try ProcessRunner("curl", ["-sS", "--max-time", "15", "-x", proxy, "http://localhost:\(http.port)/"],
                                         extraEnvironment: noProxyEnv).run(timeout: 30)
            #expect(curl.stdoutText == "proxied by tunnel up\n", "\(proxy): \(curl.stderrText)")
        }
        let pac = try ProcessRunner("curl", ["-sS", "--max-time", "15", "http://127.0.0.1:\(proxyPort)/proxy.pac"],
                                    extraEnvironment: noProxyEnv).run(timeout: 30)
        #expect(pac.stdoutText.contains("return \"PROXY 127.0.0.1:\(proxyPort)\";"), "with a password only the HTTP proxy is offered: \(pac.stdoutText)")

        let garbage = try TCPTestClient.connect(port: proxyPort)
        try garbage.send([0x16, 0x03, 0x01, 0x00, 0x00, 0x0D, 0x0A, 0x0D, 0x0A])
        _ = try? garbage.receiveAll(timeout: 10)
        try waitUntil(timeout: 5, "the debug line for the garbage client") {
            tunnel.stderr.contains("web: proxy client closed: not an HTTP request")
        }
        #expect(tunnel.stderr.split(separator: "\n").contains { $0.contains("proxy client closed") && $0.contains("client 127.0.0.1:") },
                "\(tunnel.outputSummary())")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 10) == .exited(0))
    }
}
