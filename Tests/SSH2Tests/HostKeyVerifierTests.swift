import Foundation
import Testing
@testable import SSH2
import Digests

/// The host-key policy as pure logic: temp known_hosts files, synthetic keys, no network.
@Suite("HostKeyVerifier")
struct HostKeyVerifierTests {
    /// A well-formed ed25519 public key blob: string "ssh-ed25519", string 32 key bytes.
    static func ed25519Key(_ fill: UInt8) -> SSHHostKey {
        let name = Array("ssh-ed25519".utf8)
        let blob = [0, 0, 0, UInt8(name.count)] + name + [0, 0, 0, 32] + [UInt8](repeating: fill, count: 32)
        return SSHHostKey(blob: blob, typeName: "ssh-ed25519")
    }

    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hkv-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func line(_ name: String, _ key: SSHHostKey) -> String {
        "\(name) \(key.typeName) \(Base64.encode(key.blob))\n"
    }

    let known = ed25519Key(1)
    let other = ed25519Key(2)

    @Test func knownKeyIsTrustedWithItsLocation() throws {
        let file = try Self.tempDir() + "/known_hosts"
        try ("# comment\n" + Self.line("[db.example.com]:2222", known)).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = HostKeyVerifier.verify(host: "db.example.com", port: 2222, key: known,
                                              policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        guard case .trusted(let entry) = decision else { Issue.record("expected trusted, got \(decision)"); return }
        #expect(entry.line == 2)
    }

    @Test(arguments: [HostKeyPolicy.Mode.strict, .ask])
    func unknownHostIsRefusedWithFingerprintAndFix(mode: HostKeyPolicy.Mode) throws {
        let file = try Self.tempDir() + "/known_hosts"
        let decision = HostKeyVerifier.verify(host: "db.example.com", port: 22, key: known,
                                              policy: HostKeyPolicy(mode: mode, knownHostsFiles: [file]))
        guard case .refused(let message) = decision else { Issue.record("expected refusal, got \(decision)"); return }
        #expect(message.contains(Fingerprint.sha256(known.blob)))
        #expect(message.contains("ssh-keyscan -p 22 -t ssh-ed25519 db.example.com >> \(file)"))
        #expect(!FileManager.default.fileExists(atPath: file), "nothing may be written when refusing")
    }

    @Test func acceptNewRecordsThenTrusts() throws {
        let file = try Self.tempDir() + "/sub/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file])
        #expect(HostKeyVerifier.verify(host: "h", port: 2200, key: known, policy: policy) == .recordedNew(path: file))
        let strict = HostKeyPolicy(mode: .strict, knownHostsFiles: [file])
        guard case .trusted = HostKeyVerifier.verify(host: "h", port: 2200, key: known, policy: strict) else {
            Issue.record("the recorded key is not trusted afterwards"); return
        }
    }

    @Test(arguments: [HostKeyPolicy.Mode.strict, .ask, .acceptNew, .off])
    func changedKeyIsRefusedUnderEveryPolicy(mode: HostKeyPolicy.Mode) throws {
        let file = try Self.tempDir() + "/known_hosts"
        try Self.line("h", known).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = HostKeyVerifier.verify(host: "h", port: 22, key: other, policy: HostKeyPolicy(mode: mode, knownHostsFiles: [file]))
        guard case .refused(let message) = decision else { Issue.record("expected refusal, got \(decision)"); return }
        #expect(message.contains("HAS CHANGED"))
        #expect(message.contains("\(file):1"))
        #expect(message.contains(Fingerprint.sha256(other.blob)))
        // The file is left as it was.
        #expect(try String(contentsOfFile: file, encoding: .utf8) == Self.line("h", known))
    }

    @Test func revokedKeyIsRefused() throws {
        let file = try Self.tempDir() + "/known_hosts"
        try ("@revoked * " + Self.line("", known).dropFirst()).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = HostKeyVerifier.verify(host: "h", port: 22, key: known, policy: HostKeyPolicy(mode: .off, knownHostsFiles: [file]))
        guard case .refused(let message) = decision else { Issue.record("expected refusal, got \(decision)"); return }
        #expect(message.contains("REVOKED"))
    }

    @Test func globalFilesAreReadButNeverWritten() throws {
        let dir = try Self.tempDir()
        let global = dir + "/ssh_known_hosts"
        try Self.line("h", known).write(toFile: global, atomically: true, encoding: .utf8)
        let user = dir + "/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [user], globalKnownHostsFiles: [global])
        guard case .trusted(let entry) = HostKeyVerifier.verify(host: "h", port: 22, key: known, policy: policy) else {
            Issue.record("a key in the global file is not trusted"); return
        }
        #expect(entry.file == global)
        #expect(!FileManager.default.fileExists(atPath: user))
        // A changed key in the global file is still a changed key.
        guard case .refused = HostKeyVerifier.verify(host: "h", port: 22, key: other, policy: policy) else {
            Issue.record("a key contradicting the global file was accepted"); return
        }
    }

    @Test func hashKnownHostsRecordsHashedNames() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file], hashNewEntries: true)
        #expect(HostKeyVerifier.verify(host: "secret.example.com", port: 22, key: known, policy: policy) == .recordedNew(path: file))
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("|1|"))
        #expect(!text.contains("secret.example.com"))
        guard case .trusted = HostKeyVerifier.verify(host: "secret.example.com", port: 22, key: known, policy: policy) else {
            Issue.record("the hashed entry does not match"); return
        }
    }

    @Test func offWithNowhereToRecordIsUnchecked() {
        let decision = HostKeyVerifier.verify(host: "h", port: 22, key: known, policy: HostKeyPolicy(mode: .off, knownHostsFiles: []))
        #expect(decision == .unchecked)
    }

    @Test func preferredAlgorithmsPutKnownTypesFirst() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let name = Array("ecdsa-sha2-nistp256".utf8)
        let ecdsaBlob = [0, 0, 0, UInt8(name.count)] + name + [0, 0, 0, 8] + Array("nistp256".utf8) + [0, 0, 0, 65, 4] + [UInt8](repeating: 7, count: 64)
        try "h ecdsa-sha2-nistp256 \(Base64.encode(ecdsaBlob))\n".write(toFile: file, atomically: true, encoding: .utf8)
        let order = HostKeyVerifier.preferredAlgorithms(host: "h", port: 22, policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        #expect(order.first == "ecdsa-sha2-nistp256")
        #expect(Set(order) == Set(SSHHostKey.defaultAlgorithms))
        let unknownHost = HostKeyVerifier.preferredAlgorithms(host: "other", port: 22, policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        #expect(unknownHost == SSHHostKey.defaultAlgorithms)
    }
}
