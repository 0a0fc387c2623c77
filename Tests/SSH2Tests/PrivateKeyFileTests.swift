import Foundation
import SSH2
import Testing
import TunnelTestSupport

@Suite("Private key files")
struct PrivateKeyFileTests {
    private typealias Info = PrivateKeyFileInfo

    private func inspectError(_ path: String) -> PrivateKeyFileError? {
        #expect(throws: PrivateKeyFileError.self) { try Info.inspect(path: path) }
    }

    // MARK: Real keys from ssh-keygen

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func openSSHFormatKeys() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let cases: [(type: String, bits: Int?, expected: String)] = [
            ("ed25519", nil, "ssh-ed25519"),
            ("ecdsa", 256, "ecdsa-sha2-nistp256"),
            ("ecdsa", 384, "ecdsa-sha2-nistp384"),
            ("ecdsa", 521, "ecdsa-sha2-nistp521"),
            ("rsa", 2048, "ssh-rsa"),
        ]
        for c in cases {
            let path = try KeyFixtures.generateKey(in: dir, name: "id_\(c.type)\(c.bits ?? 0)", type: c.type, bits: c.bits)
            let info = try Info.inspect(path: path)
            #expect(info == Info(path: path, format: .openSSH, keyType: c.expected, isEncrypted: false))
        }
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func encryptedOpenSSHKey() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = try KeyFixtures.generateKey(in: dir, name: "id_ed25519", type: "ed25519", passphrase: "correct horse")
        #expect(try Info.inspect(path: path)
            == Info(path: path, format: .openSSH, keyType: "ssh-ed25519", isEncrypted: true))

        // The same file saved with Windows line endings is still recognised.
        let crlf = dir + "/id_crlf"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try KeyFixtures.write(text.replacingOccurrences(of: "\n", with: "\r\n"), to: crlf)
        #expect(try Info.inspect(path: crlf)
            == Info(path: crlf, format: .openSSH, keyType: "ssh-ed25519", isEncrypted: true))
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func legacyPEMKeys() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let rsa = try KeyFixtures.generateKey(in: dir, name: "rsa", type: "rsa", bits: 2048, format: "PEM")
        #expect(try Info.inspect(path: rsa) == Info(path: rsa, format: .pemRSA, keyType: "ssh-rsa", isEncrypted: false))

        let rsaEncrypted = try KeyFixtures.generateKey(
            in: dir, name: "rsa_enc", type: "rsa", bits: 2048, format: "PEM", passphrase: "secret-pass")
        #expect(try Info.inspect(path: rsaEncrypted)
            == Info(path: rsaEncrypted, format: .pemRSA, keyType: "ssh-rsa", isEncrypted: true))

        for (bits, expected) in [(256, "ecdsa-sha2-nistp256"), (384, "ecdsa-sha2-nistp384"), (521, "ecdsa-sha2-nistp521")] {
            let ec = try KeyFixtures.generateKey(in: dir, name: "ec\(bits)", type: "ecdsa", bits: bits, format: "PEM")
            #expect(try Info.inspect(path: ec) == Info(path: ec, format: .pemEC, keyType: expected, isEncrypted: false))
        }
        let ecEncrypted = try KeyFixtures.generateKey(
            in: dir, name: "ec_enc", type: "ecdsa", format: "PEM", passphrase: "secret-pass")
        #expect(try Info.inspect(path: ecEncrypted)
            == Info(path: ecEncrypted, format: .pemEC, keyType: "ecdsa", isEncrypted: true))
    }

    @Test(.enabled(if: KeyFixtures.canGenerateKey(type: "dsa"), "needs an ssh-keygen that still makes DSA keys (OpenSSH < 10)"))
    func pemDSAKey() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let dsa = try KeyFixtures.generateKey(in: dir, name: "dsa", type: "dsa", format: "PEM")
        #expect(try Info.inspect(path: dsa) == Info(path: dsa, format: .pemDSA, keyType: "ssh-dss", isEncrypted: false))
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func pkcs8Keys() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let rsa = try KeyFixtures.generateKey(in: dir, name: "rsa8", type: "rsa", bits: 2048, format: "PKCS8")
        #expect(try Info.inspect(path: rsa) == Info(path: rsa, format: .pkcs8, keyType: "ssh-rsa", isEncrypted: false))
        let ec = try KeyFixtures.generateKey(in: dir, name: "ec8", type: "ecdsa", bits: 384, format: "PKCS8")
        #expect(try Info.inspect(path: ec)
            == Info(path: ec, format: .pkcs8, keyType: "ecdsa-sha2-nistp384", isEncrypted: false))
        let encrypted = try KeyFixtures.generateKey(
            in: dir, name: "rsa8e", type: "rsa", bits: 2048, format: "PKCS8", passphrase: "secret-pass")
        #expect(try Info.inspect(path: encrypted)
            == Info(path: encrypted, format: .pkcs8Encrypted, keyType: nil, isEncrypted: true))
    }

    @Test(.enabled(if: KeyFixtures.tool("openssl") != nil, "needs the openssl command")) func opensslKeysWithParametersBlockAndEd25519() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        // `openssl ecparam -genkey` writes an "EC PARAMETERS" block before the key.
        let ec = dir + "/ec.pem"
        try KeyFixtures.run("openssl", ["ecparam", "-genkey", "-name", "prime256v1", "-out", ec])
        #expect(try String(contentsOfFile: ec, encoding: .utf8).hasPrefix("-----BEGIN EC PARAMETERS-----"))
        #expect(try Info.inspect(path: ec) == Info(path: ec, format: .pemEC, keyType: "ecdsa-sha2-nistp256", isEncrypted: false))

        let ed = dir + "/ed.pem"
        try KeyFixtures.run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", ed])
        #expect(try Info.inspect(path: ed) == Info(path: ed, format: .pkcs8, keyType: "ssh-ed25519", isEncrypted: false))
    }

    // Needs a writable home directory, to put a file where an expanded "~/NAME" would find it.
    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: NSHomeDirectory()), "needs a writable home directory"))
    func pathIsUsedAsGivenWithoutTildeExpansion() throws {
        // `~` is expanded by TunnelConfig (as OpenSSH does, `~user` too); here a leading `~` is an ordinary
        // character, as it is for libssh2 when it reads the same path. A key at ~/NAME must not be found as "~/NAME".
        let home = NSHomeDirectory()
        let name = "ssh2tests-tilde-\(UUID().uuidString)"
        let inHome = home + "/" + name
        try #require(FileManager.default.createFile(atPath: inHome, contents: Data("not a key".utf8)))
        defer { try? FileManager.default.removeItem(atPath: inHome) }
        let given = "~/" + name
        let error = inspectError(given)
        #expect(error?.kind == .notFound)
        #expect(error?.description == "\(given): no such file")
    }

    // MARK: Things that are not private keys

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func publicKeyFileIsNamed() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        // ecdsa, because ssh-keygen cannot export ed25519 public keys as PKCS#8 PEM (used below).
        let path = try KeyFixtures.generateKey(in: dir, name: "id_ecdsa", type: "ecdsa")
        let error = inspectError(path + ".pub")
        #expect(error?.kind == .publicKeyGiven)
        #expect(error?.message.contains(path) == true)  // points at the private key next to it

        // Same content under another name, and a PEM public key: still recognised.
        let renamed = dir + "/key"
        try FileManager.default.copyItem(atPath: path + ".pub", toPath: renamed)
        #expect(inspectError(renamed)?.kind == .publicKeyGiven)
        let pem = dir + "/pem_pub"
        try KeyFixtures.write(try KeyFixtures.run("ssh-keygen", ["-e", "-m", "PKCS8", "-f", path + ".pub"]), to: pem)
        #expect(inspectError(pem)?.kind == .publicKeyGiven)
        let rfc4716 = dir + "/rfc4716_pub"
        try KeyFixtures.write(try KeyFixtures.run("ssh-keygen", ["-e", "-f", path + ".pub"]), to: rfc4716)
        #expect(inspectError(rfc4716)?.kind == .publicKeyGiven)
    }

    @Test func missingFileAndDirectory() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        #expect(inspectError(dir + "/nope")?.kind == .notFound)
        #expect(inspectError(dir)?.kind == .unreadable)
    }

    @Test(.enabled(if: getuid() != 0, "root reads files whatever their permissions")) func permissionDenied() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = dir + "/key"
        try KeyFixtures.write("-----BEGIN OPENSSH PRIVATE KEY-----\n", to: path)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: path)
        #expect(inspectError(path)?.kind == .unreadable)
    }

    @Test func emptyAndGarbageFiles() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let empty = dir + "/empty"
        try KeyFixtures.write("", to: empty)
        let emptyError = inspectError(empty)
        #expect(emptyError?.kind == .notAPrivateKey)
        #expect(emptyError?.description == "\(empty): not a private key (the file is empty)")

        let text = dir + "/text"
        try KeyFixtures.write("Host example\n  User me\n", to: text)
        #expect(inspectError(text)?.description
            == "\(text): not a private key (expected an OpenSSH or PEM private key)")

        for seed in 0..<50 {
            var generator = SplitMix64(state: UInt64(seed) &+ 0x9E37_79B9_7F4A_7C15)  // the seeds used before
            let length = Int.random(in: 0...4096, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let path = dir + "/garbage\(seed)"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(inspectError(path)?.kind == .notAPrivateKey)
        }

        // Armor around garbage, and unknown PEM labels.
        let fakeArmor = dir + "/fake"
        try KeyFixtures.write("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA!!!!\n-----END OPENSSH PRIVATE KEY-----\n", to: fakeArmor)
        #expect(inspectError(fakeArmor)?.kind == .notAPrivateKey)
        let cert = dir + "/cert"
        try KeyFixtures.write("-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n", to: cert)
        #expect(inspectError(cert)?.kind == .notAPrivateKey)
        let putty = dir + "/putty.ppk"
        try KeyFixtures.write("PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n", to: putty)
        #expect(inspectError(putty)?.message.contains("PuTTY") == true)
    }

    /// Every prefix and many corruptions of real keys must give an answer or a clean error, never a crash.
    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen")) func truncatedAndCorruptedKeys() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let keys = [
            try KeyFixtures.generateKey(in: dir, name: "ed", type: "ed25519"),
            try KeyFixtures.generateKey(in: dir, name: "rsa", type: "rsa", bits: 1024, format: "PEM"),
            try KeyFixtures.generateKey(in: dir, name: "ec8", type: "ecdsa", format: "PKCS8"),
        ]
        for key in keys {
            let original = Array(try Data(contentsOf: URL(fileURLWithPath: key)))
            let cut = dir + "/cut"
            // Cut in half: no END line.
            try Data(original.prefix(original.count / 2)).write(to: URL(fileURLWithPath: cut))
            #expect(inspectError(cut)?.kind == .notAPrivateKey)

            // Lose the middle of the body but keep the armor: the framing no longer adds up.
            let text = String(decoding: original, as: UTF8.self)
            var lines = text.split(separator: "\n").map(String.init)
            lines.removeSubrange(2..<(lines.count - 2))
            try KeyFixtures.write(lines.joined(separator: "\n") + "\n", to: cut)
            #expect(inspectError(cut)?.kind == .notAPrivateKey, "\(key)")

            // Every prefix: whatever the answer, it must not trap.
            for length in stride(from: 0, to: original.count, by: 7) {
                try Data(original.prefix(length)).write(to: URL(fileURLWithPath: cut))
                _ = try? Info.inspect(path: cut)
            }
        }
    }
}

