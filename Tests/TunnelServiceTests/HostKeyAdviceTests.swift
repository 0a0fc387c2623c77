import Testing
import TunnelConfig
import TunnelEngine
import TunnelService

/// The fix printed after a host-key refusal: exact commands, since people paste them.
@Suite("HostKeyAdvice")
struct HostKeyAdviceTests {
    static let fingerprint = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
    static let old = KnownHostsEntry(file: "/home/me/.ssh/known_hosts", line: 7, marker: .none,
                                     hostPatterns: "[db.example.com]:2222", keyType: "ssh-ed25519", key: [1, 2, 3])

    static func unknown(mode: HostKeyPolicy.Mode, recordFile: String?) -> HostKeyRefusal {
        .unknownKey(.init(host: "DB.example.com", port: 2222, name: "[db.example.com]:2222", keyType: "ssh-ed25519",
                          fingerprint: fingerprint, otherKnownKeys: [], mode: mode, recordFile: recordFile))
    }

    @Test func unknownKeyGetsTheKeyscanCommandForTheHostAsConfigured() {
        let refusal = Self.unknown(mode: .strict, recordFile: "/home/me/.ssh/known_hosts")
        #expect(HostKeyAdvice.advice(for: refusal) == "If this fingerprint is right, add the key with: "
                + "ssh-keyscan -p 2222 -t ssh-ed25519 DB.example.com >> /home/me/.ssh/known_hosts "
                + "(or set StrictHostKeyChecking accept-new for this host)")
        #expect(HostKeyAdvice.explain(refusal) == "unknown host key for [db.example.com]:2222: ssh-ed25519 \(Self.fingerprint). "
                + "StrictHostKeyChecking is yes and tunnel never prompts. If this fingerprint is right, add the key with: "
                + "ssh-keyscan -p 2222 -t ssh-ed25519 DB.example.com >> /home/me/.ssh/known_hosts "
                + "(or set StrictHostKeyChecking accept-new for this host)")
    }

    @Test func unknownKeyWithNoFileToRecordInSaysSo() throws {
        let advice = try #require(HostKeyAdvice.advice(for: Self.unknown(mode: .acceptNew, recordFile: nil)))
        #expect(advice.contains("UserKnownHostsFile"))
        #expect(!advice.contains("ssh-keyscan"), "there is no file to append to")
    }

    @Test func changedKeyGetsTheRemoveCommandForTheOldEntrysFile() {
        let refusal = HostKeyRefusal.changedKey(name: "[db.example.com]:2222", keyType: "ssh-ed25519",
                                                fingerprint: Self.fingerprint, old: Self.old)
        #expect(HostKeyAdvice.advice(for: refusal) == "If you have checked the new key with the server's administrator, "
                + "remove the old entry with: ssh-keygen -R '[db.example.com]:2222' -f /home/me/.ssh/known_hosts")
        #expect(HostKeyAdvice.explain(refusal).hasPrefix(refusal.description + " If you have checked"))
    }

    @Test func revokedKeyGetsNoFix() {
        let refusal = HostKeyRefusal.revoked(name: "h", keyType: "ssh-ed25519", fingerprint: Self.fingerprint, entry: Self.old)
        #expect(HostKeyAdvice.advice(for: refusal) == nil)
        #expect(HostKeyAdvice.explain(refusal) == refusal.description)
    }

    @Test func fileProblemsNameTheFile() {
        #expect(HostKeyAdvice.advice(for: .cannotReadKnownHosts(path: "/etc/kh", reason: "permission denied"))?
            .contains("/etc/kh") == true)
        #expect(HostKeyAdvice.advice(for: .cannotRecord(name: "h", path: "/ro/kh", reason: "read-only"))?
            .contains("/ro/kh") == true)
    }
}
