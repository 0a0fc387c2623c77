import Testing
import TunnelEngine
import TunnelService

/// The words `tunnel check --connect` prints. AEAD ciphers are covered here, not against sshd: libssh2 1.10 has no
/// aes-gcm or chacha20-poly1305, so a real session can never negotiate one on this machine.
@Suite("HandshakeExplanation")
struct HandshakeExplanationTests {
    static func result(cipher: String, mac: String) -> HostCheckResult {
        var algorithms = NegotiatedAlgorithms()
        algorithms.keyExchange = "curve25519-sha256"
        algorithms.hostKey = "ssh-ed25519"
        algorithms.cipherClientToServer = cipher
        algorithms.cipherServerToClient = cipher
        algorithms.macClientToServer = mac
        algorithms.macServerToClient = mac
        algorithms.compressionClientToServer = "none"
        algorithms.compressionServerToClient = "none"
        let facts = SessionFacts(algorithms: algorithms, hostKeyType: "ssh-ed25519", hostKeyFingerprint: "SHA256:abc",
                                 hostKeyStatus: "known_hosts /k:3", authenticationMethod: "publickey", identityFile: "/id")
        return HostCheckResult(host: "db", user: "me", hostName: "db.example.com", port: 22, session: facts)
    }

    @Test(arguments: ["aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
    func aeadIntegrityIsBuiltIntoTheCipher(cipher: String) {
        let text = HandshakeExplanation.text(Self.result(cipher: cipher, mac: "hmac-sha2-256"))
        #expect(text.contains("  integrity (MAC): built into the cipher (\(cipher) authenticates what it encrypts) each way\n"), "\(text)")
        #expect(!text.contains("hmac"), "\(text)")
    }

    @Test func macCipherNamesItsMAC() {
        let text = HandshakeExplanation.text(Self.result(cipher: "aes128-ctr", mac: "hmac-sha2-256"))
        #expect(text == """
            db: me@db.example.com:22
              key exchange: curve25519-sha256: elliptic-curve Diffie-Hellman: each side made a one-time key pair and \
            sent only its public half; each combined its own secret with the other's public value into the same shared \
            secret, from which both derived the session keys, so the keys never crossed the network
              server identity: ssh-ed25519 SHA256:abc, found in /k:3; the server signed the exchange with this key, \
            proving it holds the private half
              encryption: aes128-ctr each way
              integrity (MAC): hmac-sha2-256 each way
              compression: none each way
              authentication: publickey with /id: accepted
              passed: connected, authenticated, no forwards opened, disconnected

            """)
    }

    @Test func failureAndSummary() {
        let failed = HostCheckResult(host: "db", user: "me", hostName: "::1", port: 22, error: "cannot connect to ::1:22: refused")
        #expect(!failed.passed)
        #expect(HandshakeExplanation.text(failed) == "db: me@[::1]:22\n  FAILED: cannot connect to ::1:22: refused\n")
        #expect(HandshakeExplanation.summary([failed, Self.result(cipher: "aes128-ctr", mac: "hmac-sha1")]) == "1 of 2 hosts passed\n")
    }

    @Test func directionsThatDifferAreNamed() {
        #expect(HandshakeExplanation.eachWay("aes128-ctr", "aes256-ctr") == "aes128-ctr client->server, aes256-ctr server->client")
    }
}
