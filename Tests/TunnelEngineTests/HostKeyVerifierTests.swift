import Digests
import Foundation
import SSH2
import Testing
import TunnelConfig
import TunnelEngine

/// The host-key policy as pure logic: temp known_hosts files, synthetic keys, no network.
@Suite("HostKeyVerifier")
struct HostKeyVerifierTests {
    /// A well-formed ed25519 public key blob: string "ssh-ed25519", string 32 key bytes.
    static func ed25519Key(_ fill: UInt8) -> [UInt8] {
        let name = Array("ssh-ed25519".utf8)
        return [0, 0, 0, UInt8(name.count)] + name + [0, 0, 0, 32] + [UInt8](repeating: fill, count: 32)
    }

    static func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hkv-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func line(_ name: String, _ key: [UInt8]) -> String {
        "\(name) ssh-ed25519 \(Base64.encode(key))\n"
    }

    let known = ed25519Key(1)
    let other = ed25519Key(2)

    /// What the engine does: load, verify, and record when told to.
    func decide(_ host: String, _ port: Int, _ key: [UInt8], _ policy: HostKeyPolicy) -> HostKeyDecision {
        let knownHosts: KnownHosts
        do {
            knownHosts = try HostKeyVerifier.loadKnownHosts(for: policy)
        } catch {
            return .refused(error)
        }
        let decision = HostKeyVerifier.verify(host: host, port: port, keyType: "ssh-ed25519", key: key,
                                              policy: policy, knownHosts: knownHosts)
        guard case .recordNew(let path) = decision else { return decision }
        return HostKeyVerifier.record(host: host, port: port, keyType: "ssh-ed25519", key: key, in: path, policy: policy)
    }

    @Test func knownKeyIsTrustedWithItsLocation() throws {
        let file = try Self.tempDir() + "/known_hosts"
        try ("# comment\n" + Self.line("[db.example.com]:2222", known)).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = decide("db.example.com", 2222, known, HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        guard case .trusted(let entry) = decision else { Issue.record("expected trusted, got \(decision)"); return }
        #expect(entry.line == 2)
    }

    @Test(arguments: [HostKeyPolicy.Mode.strict, .ask])
    func unknownHostIsRefusedWithTheFactsForAFix(mode: HostKeyPolicy.Mode) throws {
        let file = try Self.tempDir() + "/known_hosts"
        let decision = decide("DB.example.com", 22, known, HostKeyPolicy(mode: mode, knownHostsFiles: [file]))
        guard case .refused(.unknownKey(let unknown)) = decision else { Issue.record("expected refusal, got \(decision)"); return }
        #expect(unknown == .init(host: "DB.example.com", port: 22, name: "db.example.com", keyType: "ssh-ed25519",
                                 fingerprint: Fingerprint.sha256(known), otherKnownKeys: [], mode: mode, recordFile: file))
        let message = HostKeyRefusal.unknownKey(unknown).description
        #expect(message == "unknown host key for db.example.com: ssh-ed25519 \(Fingerprint.sha256(known)). "
                + "StrictHostKeyChecking is \(mode.rawValue) and tunnel never prompts.")
        #expect(!FileManager.default.fileExists(atPath: file), "nothing may be written when refusing")
    }

    @Test func unknownKeyTypeNamesTheKeysThatAreKnown() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let name = Array("ecdsa-sha2-nistp256".utf8)
        let ecdsa = [0, 0, 0, UInt8(name.count)] + name + [0, 0, 0, 4, 1, 2, 3, 4]
        try "h ecdsa-sha2-nistp256 \(Base64.encode(ecdsa))\n".write(toFile: file, atomically: true, encoding: .utf8)
        let decision = decide("h", 22, known, HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        guard case .refused(let refusal) = decision, case .unknownKey(let unknown) = refusal else {
            Issue.record("expected an unknown-key refusal, got \(decision)"); return
        }
        #expect(unknown.otherKnownKeys.map(\.location) == ["\(file):1"])
        #expect(refusal.description.contains("(known_hosts has ecdsa-sha2-nistp256 at \(file):1, but not this key type)"))
    }

    @Test func verifyWritesNothingAndAsksForTheRecord() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file])
        let decision = HostKeyVerifier.verify(host: "h", port: 22, keyType: "ssh-ed25519", key: known, policy: policy,
                                              knownHosts: KnownHosts())
        #expect(decision == .recordNew(path: file))
        #expect(!FileManager.default.fileExists(atPath: file), "verify must do no file I/O")
    }

    @Test func acceptNewRecordsThenTrusts() throws {
        let file = try Self.tempDir() + "/sub/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file])
        #expect(decide("h", 2200, known, policy) == .recordedNew(path: file))
        guard case .trusted = decide("h", 2200, known, HostKeyPolicy(mode: .strict, knownHostsFiles: [file])) else {
            Issue.record("the recorded key is not trusted afterwards"); return
        }
    }

    @Test(arguments: [HostKeyPolicy.Mode.strict, .ask, .acceptNew, .off])
    func changedKeyIsRefusedUnderEveryPolicy(mode: HostKeyPolicy.Mode) throws {
        let file = try Self.tempDir() + "/known_hosts"
        try Self.line("h", known).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = decide("h", 22, other, HostKeyPolicy(mode: mode, knownHostsFiles: [file]))
        guard case .refused(let refusal) = decision,
              case .changedKey(let name, let keyType, let fingerprint, let old) = refusal else {
            Issue.record("expected a changed-key refusal, got \(decision)"); return
        }
        #expect(name == "h" && keyType == "ssh-ed25519" && fingerprint == Fingerprint.sha256(other))
        #expect(old.location == "\(file):1")
        #expect(refusal.description.contains("HAS CHANGED"))
        #expect(refusal.description.contains("\(file):1"))
        #expect(!refusal.description.contains("ssh-keygen"), "the fix is TunnelService's to word")
        // The file is left as it was.
        #expect(try String(contentsOfFile: file, encoding: .utf8) == Self.line("h", known))
    }

    @Test func revokedKeyIsRefused() throws {
        let file = try Self.tempDir() + "/known_hosts"
        try ("@revoked * " + Self.line("", known).dropFirst()).write(toFile: file, atomically: true, encoding: .utf8)
        let decision = decide("h", 22, known, HostKeyPolicy(mode: .off, knownHostsFiles: [file]))
        guard case .refused(let refusal) = decision, case .revoked(_, _, _, let entry) = refusal else {
            Issue.record("expected a revoked refusal, got \(decision)"); return
        }
        #expect(entry.line == 1)
        #expect(refusal.description.contains("REVOKED"))
    }

    @Test func unreadableKnownHostsIsARefusal() throws {
        let dir = try Self.tempDir()
        // A directory where a file is expected cannot be read as one, even by root.
        let decision = decide("h", 22, known, HostKeyPolicy(mode: .off, knownHostsFiles: [dir]))
        guard case .refused(.cannotReadKnownHosts(let path, _)) = decision else {
            Issue.record("expected cannotReadKnownHosts, got \(decision)"); return
        }
        #expect(path == dir)
    }

    @Test func acceptNewRefusesWhenTheKeyCannotBeRecordedAndOffGoesOnUnchecked() throws {
        let dir = try Self.tempDir()
        // A regular file where the known_hosts directory should be: the append cannot succeed.
        try "".write(toFile: dir + "/blocker", atomically: true, encoding: .utf8)
        let file = dir + "/blocker/known_hosts"
        let acceptNew = decide("h", 22, known, HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file]))
        guard case .refused(.cannotRecord(let name, let path, _)) = acceptNew else {
            Issue.record("expected cannotRecord, got \(acceptNew)"); return
        }
        #expect(name == "h" && path == file)
        #expect(decide("h", 22, known, HostKeyPolicy(mode: .off, knownHostsFiles: [file])) == .unchecked)
    }

    @Test func globalFilesAreReadButNeverWritten() throws {
        let dir = try Self.tempDir()
        let global = dir + "/ssh_known_hosts"
        try Self.line("h", known).write(toFile: global, atomically: true, encoding: .utf8)
        let user = dir + "/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [user], globalKnownHostsFiles: [global])
        guard case .trusted(let entry) = decide("h", 22, known, policy) else {
            Issue.record("a key in the global file is not trusted"); return
        }
        #expect(entry.file == global)
        #expect(!FileManager.default.fileExists(atPath: user))
        // A changed key in the global file is still a changed key.
        guard case .refused = decide("h", 22, other, policy) else {
            Issue.record("a key contradicting the global file was accepted"); return
        }
    }

    @Test func hashKnownHostsRecordsHashedNames() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let policy = HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file], hashNewEntries: true)
        #expect(decide("secret.example.com", 22, known, policy) == .recordedNew(path: file))
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.hasPrefix("|1|"))
        #expect(!text.contains("secret.example.com"))
        guard case .trusted = decide("secret.example.com", 22, known, policy) else {
            Issue.record("the hashed entry does not match"); return
        }
    }

    @Test func offWithNowhereToRecordIsUnchecked() {
        #expect(decide("h", 22, known, HostKeyPolicy(mode: .off, knownHostsFiles: [])) == .unchecked)
    }

    @Test func acceptNewWithNowhereToRecordIsRefused() {
        let decision = decide("h", 22, known, HostKeyPolicy(mode: .acceptNew, knownHostsFiles: []))
        guard case .refused(let refusal) = decision, case .unknownKey(let unknown) = refusal else {
            Issue.record("expected an unknown-key refusal, got \(decision)"); return
        }
        #expect(unknown.recordFile == nil)
        #expect(refusal.description.hasSuffix("and no known_hosts file to record it in (UserKnownHostsFile none)."))
    }

    @Test func preferredAlgorithmsPutKnownTypesFirst() throws {
        let file = try Self.tempDir() + "/known_hosts"
        let name = Array("ecdsa-sha2-nistp256".utf8)
        let ecdsaBlob = [0, 0, 0, UInt8(name.count)] + name + [0, 0, 0, 8] + Array("nistp256".utf8) + [0, 0, 0, 65, 4] + [UInt8](repeating: 7, count: 64)
        try "h ecdsa-sha2-nistp256 \(Base64.encode(ecdsaBlob))\n".write(toFile: file, atomically: true, encoding: .utf8)
        let knownHosts = try HostKeyVerifier.loadKnownHosts(for: HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
        let order = HostKeyVerifier.preferredAlgorithms(host: "h", port: 22, knownHosts: knownHosts)
        #expect(order.first == "ecdsa-sha2-nistp256")
        #expect(Set(order) == Set(SSHHostKey.defaultAlgorithms))
        let unknownHost = HostKeyVerifier.preferredAlgorithms(host: "other", port: 22, knownHosts: knownHosts)
        #expect(unknownHost == SSHHostKey.defaultAlgorithms)
    }
}
