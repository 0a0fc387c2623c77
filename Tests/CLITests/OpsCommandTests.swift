// Running tunnel as a service, end to end with the built binary: `service install`/`uninstall`, --version,
// completions, JSON logs (and that secrets stay out of every log line), the Prometheus endpoint during a transfer.
import Foundation
import Testing
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("tunnel as a service (the binary)", .serialized)
struct OpsCommandTests {
    static let systemdAnalyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "tunnel-ops-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func writeSimpleConfig(in directory: String) throws -> String {
        let path = directory + "/my tunnels.conf"  // a space: the unit must quote it
        try "Host web\n    HostName 127.0.0.1\n    LocalForward 18080 127.0.0.1:80\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: --version, completions

    @Test("--version prints tunnel's version, the linked libssh2's, and the crypto library under it")
    func version() throws {
        let output = try ProcessRunner(try CheckTool.tunnel(), ["--version"]).runChecked(timeout: 20)
        let lines = output.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.first == "tunnel 0.1.0", "\(output.stdoutText)")
        // The libssh2 the loader links, whatever version it is; Debian's is built on OpenSSL.
        let libssh2 = try #require(lines.first { $0.hasPrefix("libssh2 ") }, "\(output.stdoutText)")
        #expect(libssh2.range(of: #"^libssh2 1\.\d+\.\d+ \(crypto: .+\)$"#, options: .regularExpression) != nil, "\(libssh2)")
        #expect(!libssh2.contains("crypto: unknown"), "the crypto library is found: \(libssh2)")
    }

    @Test("completion scripts for bash, zsh and fish know the subcommands, and bash's is valid bash",
          arguments: ["bash", "zsh", "fish"])
    func completions(shell: String) throws {
        let output = try ProcessRunner(try CheckTool.tunnel(), ["--generate-completion-script", shell]).runChecked(timeout: 20)
        let script = output.stdoutText
        for word in ["up", "check", "service", "install", "log-format", "metrics"] {
            #expect(script.contains(word), "\(shell) completion mentions \(word)")
        }
        if shell == "bash" {
            let check = try ProcessRunner("/bin/bash", ["-n"]).run(input: Array(script.utf8), timeout: 20)
            #expect(check.succeeded, "bash -n: \(check.stderrText)")
        }
    }

    // MARK: service install / uninstall

    @Test("service install --dry-run prints a unit running this binary on the absolute config path, and writes nothing")
    func installDryRun() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try Self.writeSimpleConfig(in: directory)
        let binary = try CheckTool.tunnel()
        let output = try ProcessRunner(binary, ["service", "install", "my tunnels.conf", "--dry-run"],
                                       extraEnvironment: ["HOME": directory], currentDirectory: directory).runChecked(timeout: 20)
        let resolved = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path
        #expect(output.stdoutText.contains("\nExecStart=\(resolved) up \"\(config)\"\n"), "\(output.stdoutText)")
        #expect(output.stdoutText.hasPrefix("# \(directory)/.config/systemd/user/tunnel.service\n"), "\(output.stdoutText)")
        #expect(output.stdoutText.contains("\nType=notify\n"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/.config/systemd/user/tunnel.service"), "dry run writes nothing")
    }

    @Test("service install writes the user unit, says where and how to enable it; systemd-analyze verify accepts it; uninstall removes it")
    func installVerifyUninstall() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try Self.writeSimpleConfig(in: directory)
        let environment = ["HOME": directory, "XDG_CONFIG_HOME": ""]
        let install = try ProcessRunner(try CheckTool.tunnel(), ["service", "install", config, "--name", "tunnel-test", "--metrics", "127.0.0.1:9469"],
                                        extraEnvironment: environment).runChecked(timeout: 20)
        let unit = directory + "/.config/systemd/user/tunnel-test.service"
        #expect(install.stdoutText.contains("wrote \(unit)\n"), "\(install.stdoutText)")
        #expect(install.stdoutText.contains("systemctl --user daemon-reload && systemctl --user enable --now tunnel-test.service"),
                "\(install.stdoutText)")
        let text = try String(contentsOfFile: unit, encoding: .utf8)
        #expect(text.contains("\nRestart=on-failure\n") && text.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"))
        #expect(text.contains(" up \(config) --metrics 127.0.0.1:9469\n") || text.contains(" up \"\(config)\" --metrics 127.0.0.1:9469\n"), "\(text)")

        let uninstall = try ProcessRunner(try CheckTool.tunnel(), ["service", "uninstall", "--name", "tunnel-test"],
                                          extraEnvironment: environment).run(timeout: 30)
        #expect(uninstall.succeeded, "\(uninstall.stderrText)")
        #expect(uninstall.stdoutText.contains("removed \(unit)"), "\(uninstall.stdoutText)")
        #expect(!FileManager.default.fileExists(atPath: unit))
        let again = try ProcessRunner(try CheckTool.tunnel(), ["service", "uninstall", "--name", "tunnel-test"],
                                      extraEnvironment: environment).run(timeout: 30)
        #expect(again.exit == .exited(1) && again.stderrText.contains("nothing to uninstall"), "\(again.stderrText)")
    }

    @Test("systemd-analyze verify accepts the units install writes, user and system, with this binary and a path with a space",
          .enabled(if: systemdAnalyze != nil, "systemd-analyze not installed (Debian package systemd; Tests/run installs it)"))
    func systemdAnalyzeVerify() throws {
        let analyze = try #require(Self.systemdAnalyze)
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try Self.writeSimpleConfig(in: directory)
        // The user manager needs a runtime directory, which a container may lack.
        let runtime = directory + "/runtime"
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        for scope in ["--user", "--system"] {
            let printed = try ProcessRunner(try CheckTool.tunnel(), ["service", "install", config, scope, "--dry-run"],
                                            extraEnvironment: ["HOME": directory]).runChecked(timeout: 20)
            // The first line names where it would go; the rest is the unit.
            let unitText = printed.stdoutText.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)[1]
            let unit = directory + "/tunnel\(scope).service"
            try String(unitText).write(toFile: unit, atomically: true, encoding: .utf8)
            let arguments = scope == "--user" ? ["--user", "verify", unit] : ["verify", unit]
            let verify = try ProcessRunner(analyze, arguments, extraEnvironment: ["XDG_RUNTIME_DIR": runtime]).run(timeout: 60)
            #expect(verify.succeeded, "\(scope): systemd-analyze: \(verify.stderrText)")
            // verify exits 0 even for lines it ignores; every complaint names the file.
            #expect(!verify.stderrText.contains(unit), "\(scope): systemd-analyze complains: \(verify.stderrText)")
        }
        // The check can fail: a unit with a misspelt setting is complained about.
        let broken = directory + "/broken.service"
        try "[Service]\nExecStart=/bin/true\nRestart=sometimes\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let complaint = try ProcessRunner(analyze, ["verify", broken]).run(timeout: 60)
        #expect(complaint.stderrText.contains(broken), "\(complaint.stderrText)")
    }

    @Test("service install refuses a config with errors (it would restart forever), with FILE:LINE")
    func installRefusesBrokenConfig() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/broken.conf"
        try "Host web\n    LocalForward 80x db:5432\n".write(toFile: config, atomically: true, encoding: .utf8)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["service", "install", config],
                                       extraEnvironment: ["HOME": directory]).run(timeout: 20)
        #expect(output.exit == .exited(1))
        #expect(output.stderrText.contains("\(config):2:"), "\(output.stderrText)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/.config/systemd/user/tunnel.service"))
    }

    // MARK: logs

    @Test("JSON log lines are one object each with host and peer; passphrases, passwords and proxy passwords never appear, even at trace",
          .enabled(if: ThrowawayUser.unavailableReason == nil, "needs a throwaway user: \(ThrowawayUser.unavailableReason ?? "")"))
    func jsonLogsKeepSecrets() async throws { try await onOwnThread { try Self.jsonLogsKeepSecretsBody() } }

    static func jsonLogsKeepSecretsBody() throws {
        let passphrase = "Passphrase-7c1e"
        let password = "Password-93ad"
        let proxyPassword = "ProxyPassword-5b20"
        let user = try ThrowawayUser(password: password)
        defer { user.remove() }
        var options = SSHDFixture.Options()
        options.extraConfig = ["PasswordAuthentication yes"]
        let sshd = try SSHDFixture(options: options)
        let key = try sshd.makeClientKey(type: "ecdsa", passphrase: passphrase)
        let askpass = sshd.directory + "/askpass"
        // Answers the key's passphrase question and the password question, as a person would.
        try """
            #!/bin/sh
            case "$1" in *passphrase*) echo '\(passphrase)' ;; *) echo '\(password)' ;; esac
            """.write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o755)
        let http = try TCPTestServer(behavior: .http(body: "secrets stay secret\n"))
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let proxyPort = try freeTCPPortOutsideEphemeralRange()
        let path = sshd.directory + "/secrets.conf"
        try """
            IgnoreUnknown Tunnel*
            Host web
                HostName \(sshd.host)
                Port \(sshd.port)
                User \(sshd.user)
                IdentityFile \(key)
                UserKnownHostsFile \(sshd.knownHostsPath)
                LocalForward \(localPort) 127.0.0.1:\(http.port)
            Host pw
                HostName \(sshd.host)
                Port \(sshd.port)
                User \(user.name)
                PubkeyAuthentication no
                UserKnownHostsFile \(sshd.knownHostsPath)
                DynamicForward 127.0.0.1:\(proxyPort)
                TunnelProxyAuth alice:\(proxyPassword)

            """.write(toFile: path, atomically: true, encoding: .utf8)

        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", path, "-vv", "--log-format", "json"],
                                       extraEnvironment: ["SSH_ASKPASS": askpass, "SSH_ASKPASS_REQUIRE": "force"]).start()
        defer { _ = tunnel.terminate() }
        try waitUntil(timeout: 30, "both hosts to connect") {
            tunnel.lines().filter { $0.contains("\"message\":\"connected to") }.count == 2
        }
        #expect(try UpCommandTests.httpGet(port: localPort).hasSuffix("secrets stay secret\n"))
        // A proxy client with the right password, and one with a wrong one (the refusal is logged).
        let good = try ProcessRunner("curl", ["-sS", "--max-time", "20", "-x", "socks5h://alice:\(proxyPassword)@127.0.0.1:\(proxyPort)",
                                              "http://127.0.0.1:\(http.port)/"]).run(timeout: 30)
        #expect(good.stdoutText == "secrets stay secret\n", "\(good.stderrText)")
        _ = try ProcessRunner("curl", ["-sS", "--max-time", "20", "-x", "socks5h://alice:wrong-\(proxyPassword)@127.0.0.1:\(proxyPort)",
                                       "http://127.0.0.1:\(http.port)/"]).run(timeout: 30)
        #expect(tunnel.exitStatus == nil, "\(tunnel.outputSummary())")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 15) == .exited(0))

        let lines = tunnel.lines()
        #expect(lines.contains { $0.contains(#""level":"debug""#) || $0.contains(#""level":"trace""#) }, "-vv logs below info: \(lines)")
        var hosts: Set<String> = []
        for line in lines {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)")
            guard let object else { continue }
            #expect(object["time"] is String && object["level"] is String && object["message"] is String, "\(line)")
            if let host = object["host"] as? String {
                hosts.insert(host)
                #expect(object["peer"] as? String == "127.0.0.1:\(sshd.port)", "a host's line names its server: \(line)")
            }
        }
        #expect(hosts == ["web", "pw"])
        let everything = tunnel.stderr + tunnel.stdout
        for secret in [passphrase, password, proxyPassword] {
            #expect(!everything.contains(secret), "\(secret) appears in the log")
        }
    }

    // MARK: metrics

    /// `name{labels} value` lines of a Prometheus text exposition, by series (`name{a="x",b="y"}`), and the
    /// `# TYPE` of each name.
    struct Exposition {
        var values: [String: Double] = [:]
        var types: [String: String] = [:]

        init(_ text: String) throws {
            for line in text.split(separator: "\n") {
                if line.hasPrefix("# TYPE ") {
                    let parts = line.split(separator: " ")
                    if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                    continue
                }
                if line.hasPrefix("#") { continue }
                guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                    throw TestSupportError("not a sample line: \(line)")
                }
                values[String(line[..<space])] = value
            }
        }

        func value(_ name: String, host: String, _ extra: String = "") -> Double? {
            values["\(name){host=\"\(host)\"\(extra)}"] ?? values["\(name){\(extra.isEmpty ? "" : String(extra.dropFirst()) + ",")host=\"\(host)\"}"]
        }
    }

    static func scrape(port: Int) throws -> Exposition {
        let output = try ProcessRunner("curl", ["-sS", "--fail", "--max-time", "10", "http://127.0.0.1:\(port)/metrics"]).run(timeout: 20)
        guard output.succeeded else { throw TestSupportError("curl: \(output.stderrText)") }
        return try Exposition(output.stdoutText)
    }

    @Test("--metrics: scraped with curl during a transfer and after it, the counters match the bytes the test moved")
    func metricsDuringTransfer() async throws { try await onOwnThread { try Self.metricsDuringTransferBody() } }

    static func metricsDuringTransferBody() throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let metricsPort = try freeTCPPortOutsideEphemeralRange()
        let config = try UpCommandTests.writeConfig(sshd, localPort: localPort, target: echo.port)
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "--metrics", "127.0.0.1:\(metricsPort)"]).start()
        defer { _ = tunnel.terminate() }
        try tunnel.waitForLine(containing: "metrics at http://127.0.0.1:\(metricsPort)/metrics", timeout: 20)
        try tunnel.waitForLine(containing: "connected to", timeout: 20)

        let before = try scrape(port: metricsPort)
        #expect(before.types["tunnel_bytes_sent_total"] == "counter", "\(before.types)")
        #expect(before.types["tunnel_connections_active"] == "gauge")
        #expect(before.value("tunnel_up", host: "web") == 1)
        #expect(before.value("tunnel_state", host: "web", ",state=\"up\"") == 1, "\(before.values)")
        #expect(before.value("tunnel_state", host: "web", ",state=\"reconnecting\"") == 0)
        #expect(before.value("tunnel_sessions_total", host: "web") == 1)
        #expect(before.value("tunnel_bytes_sent_total", host: "web") == 0)

        // One connection, echoed in pieces: scrapes between the pieces see it open and its bytes grow.
        // Pieces small enough to sit in the socket buffers whole: each is sent, then its echo read back.
        let piece = TestData.pseudoRandom(count: 64 * 1024, seed: 7)
        let pieces = 12
        let connection = try TCPTestClient.connect(port: localPort)
        var lastSent = 0.0
        for index in 1...pieces {
            try connection.send(piece)
            #expect(try connection.receive(exactly: piece.count) == piece, "piece \(index) echoed")
            let during = try scrape(port: metricsPort)
            #expect(during.value("tunnel_connections_active", host: "web") == 1, "piece \(index)")
            let sent = during.value("tunnel_bytes_sent_total", host: "web") ?? -1
            #expect(sent == Double(index * piece.count), "after piece \(index): \(sent)")
            #expect(sent > lastSent)
            lastSent = sent
        }
        connection.close()
        try waitUntil(timeout: 20, "the connection to end in the metrics") {
            (try? scrape(port: metricsPort).value("tunnel_connections_active", host: "web")) == 0
        }
        let after = try scrape(port: metricsPort)
        #expect(after.value("tunnel_bytes_sent_total", host: "web") == Double(pieces * piece.count))
        #expect(after.value("tunnel_bytes_received_total", host: "web") == Double(pieces * piece.count))
        #expect(after.value("tunnel_connections_total", host: "web") == 1)
        #expect(after.value("tunnel_reconnects_total", host: "web") == 0)

        // Anything but /metrics is 404; the endpoint listens on the loopback address only.
        let other = try ProcessRunner("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                               "http://127.0.0.1:\(metricsPort)/"]).run(timeout: 20)
        #expect(other.stdoutText == "404")
        tunnel.signal(SIGTERM)
        #expect(try tunnel.waitForExit(timeout: 15) == .exited(0))
        #expect(!TCPTestClient.isAccepting(port: metricsPort), "the metrics port is closed after stop")
    }

    @Test("--metrics refuses an address that is not loopback, and a port in use is a startup error")
    func metricsAddressRefused() throws {
        let refused = try ProcessRunner(try CheckTool.tunnel(), ["up", "/nonexistent.conf", "--metrics", "0.0.0.0:9469"]).run(timeout: 20)
        #expect(refused.exit != .exited(0))
        #expect(refused.stderrText.contains("not a loopback address"), "\(refused.stderrText)")

        let sshd = try SSHDFixture()
        let busy = try TCPTestServer(behavior: .sink)
        let config = try UpCommandTests.writeConfig(sshd, localPort: try freeTCPPortOutsideEphemeralRange(), target: 80)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["up", config, "--metrics", "127.0.0.1:\(busy.port)"]).run(timeout: 30)
        #expect(output.exit == .exited(1))
        #expect(output.stderrText.contains("--metrics 127.0.0.1:\(busy.port): cannot listen"), "\(output.stderrText)")
    }
}
