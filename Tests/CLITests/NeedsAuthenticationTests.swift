// A host whose login needs a person (here: a key with a passphrase) under `tunnel up` with nobody to ask (no
// terminal, no SSH_ASKPASS): one attempt, then the "needs authentication" state, no retry loop.
import Foundation
import Testing
import TunnelTestSupport

@Suite("needs authentication: no retry loop when nobody can answer", .serialized)
struct NeedsAuthenticationTests {
    @Test("a passphrase nobody can give: said once, not retried, clients turned away at once")
    func passphraseNobodyCanGive() async throws { try await onOwnThread { try Self.passphraseBody() } }
    static func passphraseBody() throws {
        var options = SSHDFixture.Options()
        options.logLevel = "VERBOSE"  // logs each connection
        let sshd = try SSHDFixture(options: options)
        let key = try sshd.makeClientKey(type: "ed25519", passphrase: "only a person knows")
        let localPort = try freeTCPPortOutsideEphemeralRange()
        let path = sshd.directory + "/needs-auth.conf"
        let lines = [
            "IgnoreUnknown Tunnel*",
            "Host locked", "    HostName 127.0.0.1", "    Port \(sshd.port)", "    User \(sshd.user)",
            "    IdentityFile \(key)", "    IdentitiesOnly yes", "    IdentityAgent none",
            "    UserKnownHostsFile \(sshd.knownHostsPath)", "    TunnelReconnectDelay 1", "    TunnelReconnectMaxDelay 1",
            "    LocalForward \(localPort) 127.0.0.1:9",
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SSH_ASKPASS"] = nil
        environment["SSH_ASKPASS_REQUIRE"] = nil
        environment["DISPLAY"] = nil
        let tunnel = try ProcessRunner(try CheckTool.tunnel(), ["up", path], environment: environment).start()
        defer { _ = tunnel.terminate() }
        let line = try tunnel.waitForLine(containing: "needs authentication", timeout: 30)
        #expect(line.contains("locked: error: needs authentication: "), "\(line)")
        #expect(line.contains("not retrying until tunnel is restarted"), "\(line)")
        // With a 1 s backoff cap, a retry loop would connect again within a second or two; it must not.
        let connections = { sshd.log.components(separatedBy: "Connection from 127.0.0.1").count - 1 }
        try waitUntilStable(timeout: 20, quiet: 4, "sshd's count of connections to settle", connections)
        #expect(connections() == 1, "one attempt only: \(sshd.log)")
        // A client of the forward is turned away at once, not held for ConnectTimeout.
        let started = Date()
        let client = try TCPTestClient.connect(port: localPort)
        defer { client.close() }
        let received = try client.receiveAll(timeout: 5)
        #expect(received.isEmpty)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(tunnel.isRunning, "the tunnel keeps running (its port stays bound) until restarted")
        let output = tunnel.outputSummary()
        #expect(output.components(separatedBy: "needs authentication:").count - 1 == 1, "said once: \(output)")
    }
}
