// `tunnel check FILE --connect`, end to end: the built binary against a throwaway sshd, the printed handshake
// compared with what sshd's own log says was negotiated.
import Foundation
import Testing
import TunnelTestSupport

@Suite("tunnel check --connect (the binary)", .serialized)
struct CheckConnectTests {
    /// A config with one host `name` for `sshd` (with a LocalForward, so it is one `tunnel up` would bring up).
    static func writeConfig(_ sshd: SSHDFixture, name: String = "web", identity: String? = nil, port: Int? = nil,
                            extra: [String] = []) throws -> String {
        let path = sshd.directory + "/check-\(name).conf"
        let lines = [
            "Host \(name)",
            "    HostName \(sshd.host)",
            "    Port \(port ?? sshd.port)",
            "    User \(sshd.user)",
            "    IdentityFile \(identity ?? sshd.clientKeyPath)",
            "    UserKnownHostsFile \(sshd.knownHostsPath)",
            "    ConnectTimeout 10",
            "    LocalForward 40999 127.0.0.1:9",
        ] + extra.map { "    " + $0 }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The value after `label` on sshd's "debug1: kex: ..." line that contains `marker`.
    static func sshdLogValue(_ log: String, line marker: String, after label: String) -> String? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains(marker) }),
              let range = line.range(of: label) else { return nil }
        return line[range.upperBound...].split(separator: " ").first.map(String.init)
    }

    static func debugSSHD() throws -> SSHDFixture {
        var options = SSHDFixture.Options()
        options.logLevel = "DEBUG1"
        return try SSHDFixture(options: options)
    }

    @Test("explains the handshake as sshd negotiated it, exits 0, and opens no forward")
    func explainsTheHandshake() async throws { try await onOwnThread { try Self.explainsTheHandshakeBody() } }

    static func explainsTheHandshakeBody() throws {
        let sshd = try debugSSHD()
        // A RemoteForward too: --connect must not ask the server for it.
        let config = try writeConfig(sshd, extra: ["RemoteForward 0 127.0.0.1:9", "ForwardAgent yes"])
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect"]).run(timeout: 30)
        #expect(output.exit == .exited(0), "stdout: \(output.stdoutText)\nstderr: \(output.stderrText)")
        let text = output.stdoutText
        #expect(output.stderrText.contains("\(config):10: warning: ForwardAgent is an OpenSSH option tunnel does not use; ignored"),
                "config warnings go to stderr: \(output.stderrText)")
        try waitUntil(timeout: 5, "sshd to log the client's disconnect") { sshd.log.contains("Received disconnect from 127.0.0.1") }
        let log = sshd.log
        let kex = try #require(sshdLogValue(log, line: "kex: algorithm:", after: "kex: algorithm: "), "sshd log: \(log)")
        let cipherCS = try #require(sshdLogValue(log, line: "kex: client->server cipher:", after: "cipher: "))
        let macCS = try #require(sshdLogValue(log, line: "kex: client->server cipher:", after: "MAC: "))
        let cipherSC = try #require(sshdLogValue(log, line: "kex: server->client cipher:", after: "cipher: "))
        let macSC = try #require(sshdLogValue(log, line: "kex: server->client cipher:", after: "MAC: "))
        let hostKeyAlgorithm = try #require(sshdLogValue(log, line: "kex: host key algorithm:", after: "host key algorithm: "))

        #expect(text.contains("web: \(sshd.user)@127.0.0.1:\(sshd.port)\n"), "\(text)")
        #expect(text.contains("  key exchange: \(kex): "), "\(text)")
        #expect(text.contains("so the keys never crossed the network"), "\(text)")
        #expect(hostKeyAlgorithm == "ssh-ed25519")
        #expect(text.contains("  server identity: ssh-ed25519 \(sshd.hostKeyFingerprint), found in \(sshd.knownHostsPath):1;"), "\(text)")
        let encryption = cipherCS == cipherSC ? "\(cipherCS) each way" : "\(cipherCS) client->server, \(cipherSC) server->client"
        #expect(text.contains("  encryption: \(encryption)\n"), "\(text)")
        let integrity = macCS == macSC ? "\(macCS) each way" : "\(macCS) client->server, \(macSC) server->client"
        if macCS != "<implicit>" {
            #expect(text.contains("  integrity (MAC): \(integrity)\n"), "\(text)")
        }
        #expect(text.contains("  compression: none each way\n"), "\(text)")
        #expect(text.contains("  authentication: publickey with \(sshd.clientKeyPath): accepted\n"), "\(text)")
        #expect(log.contains("Accepted publickey for \(sshd.user)"), "\(log)")
        #expect(text.hasSuffix("1 of 1 host passed\n"), "\(text)")
        // No forward: no tcpip-forward request, no direct-tcpip channel (the engine's idle `session` channel is
        // not a forward).
        #expect(log.contains("server_input_channel_open: ctype session"), "the log shows channel opens: \(log)")
        #expect(!log.contains("tcpip-forward"), "\(log)")
        #expect(!log.contains("ctype direct-tcpip"), "\(log)")
    }

    @Test("--json: one object per host with the same facts, parsed back")
    func json() async throws { try await onOwnThread { try Self.jsonBody() } }

    static func jsonBody() throws {
        let sshd = try debugSSHD()
        let config = try writeConfig(sshd)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect", "--json", "web"]).run(timeout: 30)
        #expect(output.exit == .exited(0), "stderr: \(output.stderrText)")
        let parsed = try JSONSerialization.jsonObject(with: Data(output.stdoutText.utf8))
        let array = try #require(parsed as? [[String: Any]], "\(output.stdoutText)")
        #expect(array.count == 1)
        let host = try #require(array.first)
        #expect(host["host"] as? String == "web")
        #expect(host["passed"] as? Bool == true)
        #expect(host["port"] as? Int == sshd.port)
        let session = try #require(host["session"] as? [String: Any], "\(output.stdoutText)")
        #expect(session["hostKeyFingerprint"] as? String == sshd.hostKeyFingerprint)
        #expect(session["hostKeyType"] as? String == "ssh-ed25519")
        #expect(session["hostKeyStatus"] as? String == "known_hosts \(sshd.knownHostsPath):1")
        #expect(session["authenticationMethod"] as? String == "publickey")
        #expect(session["identityFile"] as? String == sshd.clientKeyPath)
        let algorithms = try #require(session["algorithms"] as? [String: Any])
        let log = sshd.log
        #expect(algorithms["hostKey"] as? String == sshdLogValue(log, line: "kex: host key algorithm:", after: "host key algorithm: "))
        #expect(algorithms["keyExchange"] as? String == sshdLogValue(log, line: "kex: algorithm:", after: "kex: algorithm: "))
        #expect(algorithms["cipherClientToServer"] as? String == sshdLogValue(log, line: "kex: client->server cipher:", after: "cipher: "))
        #expect(algorithms["cipherServerToClient"] as? String == sshdLogValue(log, line: "kex: server->client cipher:", after: "cipher: "))
        #expect(algorithms["macClientToServer"] as? String == sshdLogValue(log, line: "kex: client->server cipher:", after: "MAC: "))
        #expect(algorithms["macServerToClient"] as? String == sshdLogValue(log, line: "kex: server->client cipher:", after: "MAC: "))
    }

    @Test("a key the server refuses: exit 1 with the refusal")
    func wrongKey() async throws { try await onOwnThread { try Self.wrongKeyBody() } }

    static func wrongKeyBody() throws {
        let sshd = try SSHDFixture()
        let stranger = try sshd.makeUnauthorizedKey()
        let config = try writeConfig(sshd, identity: stranger)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect"]).run(timeout: 30)
        #expect(output.exit == .exited(1), "stdout: \(output.stdoutText)")
        #expect(output.stdoutText.contains("  FAILED: authentication failed for \(sshd.user)@127.0.0.1:\(sshd.port): "), "\(output.stdoutText)")
        #expect(output.stdoutText.contains("\(stranger): the server refused this key"), "\(output.stdoutText)")
        #expect(output.stdoutText.hasSuffix("0 of 1 host passed\n"), "\(output.stdoutText)")
    }

    @Test("an unknown host key under StrictHostKeyChecking yes: exit 1 with the fingerprint and the fix; nothing recorded")
    func unknownHostKey() async throws { try await onOwnThread { try Self.unknownHostKeyBody() } }

    static func unknownHostKeyBody() throws {
        let sshd = try SSHDFixture()
        let emptyKnownHosts = sshd.directory + "/empty_known_hosts"
        try "".write(toFile: emptyKnownHosts, atomically: true, encoding: .utf8)
        let config = try writeConfig(sshd, extra: ["StrictHostKeyChecking yes", "UserKnownHostsFile \(emptyKnownHosts)"])
        // The later UserKnownHostsFile does not override the first (first value wins): write the file by hand.
        let text = try String(contentsOfFile: config, encoding: .utf8)
            .replacingOccurrences(of: "UserKnownHostsFile \(sshd.knownHostsPath)", with: "UserKnownHostsFile \(emptyKnownHosts)")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect"]).run(timeout: 30)
        #expect(output.exit == .exited(1), "stdout: \(output.stdoutText)")
        #expect(output.stdoutText.contains("unknown host key for [127.0.0.1]:\(sshd.port): ssh-ed25519 \(sshd.hostKeyFingerprint)"), "\(output.stdoutText)")
        #expect(output.stdoutText.contains("ssh-keyscan"), "the fix: \(output.stdoutText)")
        #expect(try String(contentsOfFile: emptyKnownHosts, encoding: .utf8).isEmpty, "--connect must not record a key under yes")
    }

    @Test("a server that is down: exit 1 with cannot connect; a ProxyJump host is not connected directly")
    func serverDownAndProxyJump() async throws { try await onOwnThread { try Self.serverDownAndProxyJumpBody() } }

    static func serverDownAndProxyJumpBody() throws {
        let sshd = try SSHDFixture()
        let closed = try freeTCPPort()
        let config = try writeConfig(sshd, port: closed)
        let jump = """
            Host jumped
                HostName 127.0.0.1
                Port \(sshd.port)
                User \(sshd.user)
                ProxyJump nonexistent.invalid
                LocalForward 40999 127.0.0.1:9

            """
        try (try String(contentsOfFile: config, encoding: .utf8) + jump).write(toFile: config, atomically: true, encoding: .utf8)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--connect"]).run(timeout: 30)
        #expect(output.exit == .exited(1), "stdout: \(output.stdoutText)")
        #expect(output.stdoutText.contains("web: \(sshd.user)@127.0.0.1:\(closed)\n  FAILED: cannot connect to 127.0.0.1:\(closed)"), "\(output.stdoutText)")
        #expect(output.stdoutText.contains("jumped: \(sshd.user)@127.0.0.1:\(sshd.port) via nonexistent.invalid\n  jump host nonexistent.invalid ("), "\(output.stdoutText)")
        #expect(output.stdoutText.contains("  FAILED: jumped via nonexistent.invalid: nonexistent.invalid: cannot connect to nonexistent.invalid:22: cannot resolve host name"), "\(output.stdoutText)")
        #expect(!sshd.log.contains("Connection from"), "the ProxyJump host must not be connected directly: \(sshd.log)")
    }

    @Test("HOST arguments and --json need --connect")
    func flagsNeedConnect() throws {
        let sshd = try SSHDFixture()
        let config = try Self.writeConfig(sshd)
        let output = try ProcessRunner(try CheckTool.tunnel(), ["check", config, "--json"]).run(timeout: 20)
        #expect(output.exit == .exited(64), "stderr: \(output.stderrText)")
        #expect(output.stderrText.contains("--json needs --connect"), "\(output.stderrText)")
    }
}
