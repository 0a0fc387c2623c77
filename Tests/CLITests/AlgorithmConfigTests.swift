// `Ciphers`/`MACs` from the config file, end to end: the built binary against a throwaway sshd, the negotiated
// algorithms read back from `tunnel check --connect --json` and from sshd's own log.
import Foundation
import Testing
import TunnelTestSupport

@Suite("Ciphers and MACs from the config (the binary)", .serialized)
struct AlgorithmConfigTests {
    @Test("Ciphers aes256-ctr and MACs hmac-sha2-512 are what the session negotiates, each way")
    func configuredCipherIsNegotiated() async throws { try await onOwnThread { try Self.configuredCipherBody() } }

    static func configuredCipherBody() throws {
        let sshd = try CheckConnectTests.debugSSHD()
        let config = try CheckConnectTests.writeConfig(sshd, extra: ["Ciphers aes256-ctr", "MACs hmac-sha2-512"])
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "--json", "web"]).run(timeout: 30)
        #expect(output.exit == .exited(0), "stderr: \(output.stderrText)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(output.stdoutText.utf8)) as? [[String: Any]])
        let session = try #require(parsed.first?["session"] as? [String: Any], "\(output.stdoutText)")
        let algorithms = try #require(session["algorithms"] as? [String: Any])
        #expect(algorithms["cipherClientToServer"] as? String == "aes256-ctr", "\(algorithms)")
        #expect(algorithms["cipherServerToClient"] as? String == "aes256-ctr", "\(algorithms)")
        #expect(algorithms["macClientToServer"] as? String == "hmac-sha2-512", "\(algorithms)")
        #expect(algorithms["macServerToClient"] as? String == "hmac-sha2-512", "\(algorithms)")
        try waitUntil(timeout: 5, "sshd to log the negotiated cipher") { sshd.log.contains("kex: server->client cipher:") }
        #expect(CheckConnectTests.sshdLogValue(sshd.log, line: "kex: client->server cipher:", after: "cipher: ") == "aes256-ctr")
    }

    @Test("tunnel up -v logs the negotiated algorithms at session up, and tunnel status reports the configured cipher")
    func upLogsAndReportsTheCipher() async throws { try await onOwnThread { try Self.upLogsAndReportsBody() } }

    static func upLogsAndReportsBody() throws {
        let sshd = try SSHDFixture()
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let path = sshd.directory + "/ciphers-up.conf"
        try """
            Host web
                HostName \(sshd.host)
                Port \(sshd.port)
                User \(sshd.user)
                IdentityFile \(sshd.clientKeyPath)
                UserKnownHostsFile \(sshd.knownHostsPath)
                LocalForward 127.0.0.1:\(localPort) 127.0.0.1:9
                Ciphers aes256-ctr
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let control = sshd.directory + "/ciphers-up.sock"
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", "-v", "--control", control, path]).start()
        defer { _ = tunnel.terminate() }
        let line = try tunnel.waitForLine(containing: "negotiated kex", timeout: 20)
        #expect(line.contains("host key ssh-ed25519, cipher aes256-ctr each way, MAC "), "\(line)")
        let status = try ProcessRunner(try CheckTool.tunnel(), ["status", "--json", "--control", control]).run(timeout: 20)
        let reply = try #require(try JSONSerialization.jsonObject(with: Data(status.stdoutText.utf8)) as? [String: Any],
                                 "\(status.stdoutText)\n\(status.stderrText)")
        let host = try #require(((reply["status"] as? [String: Any])?["hosts"] as? [[String: Any]])?.first, "\(reply)")
        #expect(host["state"] as? String == "up", "\(host)")
        #expect(host["cipherOut"] as? String == "aes256-ctr", "\(host)")
        #expect(host["cipherIn"] as? String == "aes256-ctr", "\(host)")
    }

    @Test("a Ciphers line naming only ciphers libssh2 lacks is refused by tunnel check, with file:line")
    func unusableCiphersRefused() async throws { try await onOwnThread { try Self.unusableCiphersBody() } }

    static func unusableCiphersBody() throws {
        let path = FileManager.default.temporaryDirectory.path + "/ciphers-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).conf"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            Host web
                HostName 127.0.0.1
                LocalForward 40999 127.0.0.1:9
                Ciphers nosuch-cipher@example.com,rot13-ctr
                MACs hmac-sha2-256,nosuch-mac
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", path]).run(timeout: 20)
        #expect(output.exit == .exited(1), "stdout: \(output.stdoutText)\nstderr: \(output.stderrText)")
        let lines = output.stderrText.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("\(path):4: Ciphers nosuch-cipher@example.com,rot13-ctr: leaves nothing libssh2 ") },
                "\(output.stderrText)")
        #expect(lines.contains { $0.hasPrefix("\(path):5: warning: MACs: libssh2 ") && $0.hasSuffix("does not support nosuch-mac; ignored") },
                "\(output.stderrText)")
        // --resolve says the same for that host (and still prints the ssh -G lines).
        let resolve = try ProcessRunner(try CheckTool.tunnel(), ["check", path, "--resolve", "web"]).run(timeout: 20)
        #expect(resolve.exit == .exited(1))
        #expect(resolve.stderrText.contains("\(path):4: Ciphers nosuch-cipher@example.com,rot13-ctr: leaves nothing"), "\(resolve.stderrText)")
        #expect(resolve.stdoutText.contains("hostname 127.0.0.1\n"))
        // tunnel up names the line and does not bring the host up (never with some other list instead).
        let up = try ProcessRunner(try CheckTool.tunnel(), ["up", path, "web"]).run(timeout: 20)
        #expect(up.exit == .exited(1), "\(up.stderrText)")
        #expect(up.stderrText.contains("\(path):4: Ciphers nosuch-cipher@example.com,rot13-ctr: leaves nothing"), "\(up.stderrText)")
        #expect(up.stderrText.contains("not brought up"), "\(up.stderrText)")
    }
}
