import Foundation
import SSH2
import Testing
import TunnelTestSupport

/// OpenSSH ignores a private key that group or others may access ("UNPROTECTED PRIVATE KEY FILE"); so do we,
/// naming the file and the fix.
@Suite("Private key file permissions")
struct PrivateKeyPermissionTests {
    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen"))
    func keyAccessibleToOthersIsRefusedWithTheFix() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = try KeyFixtures.generateKey(in: dir, name: "id_ed25519", type: "ed25519")
        #expect(try PrivateKeyFileInfo.inspect(path: path).keyType == "ssh-ed25519", "0600 as ssh-keygen writes it")
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] as [mode_t] {
            chmod(path, mode)
            let error = #expect(throws: PrivateKeyFileError.self) { try PrivateKeyFileInfo.inspect(path: path) }
            #expect(error?.kind == .unprotected, "mode \(String(mode, radix: 8))")
            let text = error?.description ?? ""
            #expect(text.contains("UNPROTECTED PRIVATE KEY FILE") && text.contains(String(format: "%04o", mode)))
            #expect(text.hasPrefix(path + ": ") && text.hasSuffix("chmod 600 \(path)"), "\(text)")
        }
        chmod(path, 0o400)
        #expect(try PrivateKeyFileInfo.inspect(path: path).keyType == "ssh-ed25519", "read-only for the owner is fine")
    }

    @Test(.enabled(if: KeyFixtures.hasSSHKeygen, "needs OpenSSH's ssh-keygen"))
    func aPublicKeyGivenByMistakeIsStillNamedAsOne() throws {
        let dir = try KeyFixtures.makeTempDirectory()
        defer { KeyFixtures.removeTempDirectory(dir) }
        let path = try KeyFixtures.generateKey(in: dir, name: "id_ed25519", type: "ed25519")
        chmod(path + ".pub", 0o644)
        let error = #expect(throws: PrivateKeyFileError.self) { try PrivateKeyFileInfo.inspect(path: path + ".pub") }
        #expect(error?.kind == .publicKeyGiven)
    }
}
