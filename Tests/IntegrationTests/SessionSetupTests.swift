import Foundation
import NIOPosix
import SSH2
import Testing
import TunnelEngine
import TunnelTestSupport

/// Host-key verification and authentication against a real sshd: every refusal must be clear and must happen
/// before any forward is usable.
@Suite("Session setup: host keys and authentication", .serialized)
struct SessionSetupTests {
    @Test("known host: connects and reports the same fingerprint as ssh-keygen")
    func knownHost() async throws {
        let sshd = try SSHDFixture()
        let info = try await startAndStop(sshd, policy: nil)
        #expect(info.hostKeyType == "ssh-ed25519")
        #expect(info.hostKeyFingerprint == sshd.hostKeyFingerprint)
    }

    @Test("unknown host is refused under StrictHostKeyChecking yes, with the fingerprint (the fix is for TunnelService to add)")
    func unknownHostRefused() async throws {
        let sshd = try SSHDFixture()
        let empty = sshd.directory + "/empty_known_hosts"
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        let error = try await expectStartFailure(sshd, policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [empty]))
        #expect(error.contains("unknown host key for [127.0.0.1]:\(sshd.port)"))
        #expect(error.contains(sshd.hostKeyFingerprint))
        #expect(!error.contains("ssh-keyscan"), "the engine states the problem; TunnelService adds the fix")
        #expect(try String(contentsOfFile: empty, encoding: .utf8).isEmpty, "a refused key must not be recorded")
    }

    @Test("accept-new records an unknown host's key, then trusts it")
    func acceptNewRecords() async throws {
        let sshd = try SSHDFixture()
        let file = sshd.directory + "/new_dir/known_hosts"
        _ = try await startAndStop(sshd, policy: HostKeyPolicy(mode: .acceptNew, knownHostsFiles: [file]))
        let recorded = try String(contentsOfFile: file, encoding: .utf8)
        #expect(recorded.contains("[127.0.0.1]:\(sshd.port) \(sshd.hostPublicKeyLine.split(separator: " ").prefix(2).joined(separator: " "))"))
        // Second time the key is known: strict mode accepts it.
        _ = try await startAndStop(sshd, policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [file]))
    }

    @Test("a changed host key is refused under every policy, naming the old entry's file and line")
    func changedHostKeyRefused() async throws {
        let sshd = try SSHDFixture()
        // A different ed25519 key recorded for this host, on line 2.
        let otherLine = try SSHDFixture.publicKeyLine(try sshd.makeUnauthorizedKey() + ".pub")
        let file = sshd.directory + "/changed_known_hosts"
        try "# old entry\n[127.0.0.1]:\(sshd.port) \(otherLine)\n".write(toFile: file, atomically: true, encoding: .utf8)
        for mode in [HostKeyPolicy.Mode.strict, .acceptNew, .off] {
            let error = try await expectStartFailure(sshd, policy: HostKeyPolicy(mode: mode, knownHostsFiles: [file]))
            #expect(error.contains("HAS CHANGED"), "mode \(mode)")
            #expect(error.contains("\(file):2"), "mode \(mode)")
            #expect(error.contains(sshd.hostKeyFingerprint), "mode \(mode)")
        }
    }

    @Test("a key the server does not know is refused with a clear error")
    func wrongKeyRefused() async throws {
        let sshd = try SSHDFixture()
        let key = try sshd.makeUnauthorizedKey()
        let error = try await expectStartFailure(sshd, identity: key)
        #expect(error.contains("authentication failed for \(sshd.user)@127.0.0.1:\(sshd.port)"))
        #expect(error.contains("\(key): the server refused this key"))
    }

    @Test("the server's own authorized key in a file others can read is not used: UNPROTECTED, with the fix")
    func unprotectedKeyNotUsed() async throws {
        let sshd = try SSHDFixture()
        // The key the server accepts, copied and opened up as a careless copy would be.
        let path = sshd.directory + "/id_world_readable"
        try FileManager.default.copyItem(atPath: sshd.clientKeyPath, toPath: path)
        chmod(path, 0o644)
        let error = try await expectStartFailure(sshd, identity: path)
        #expect(error.contains("authentication failed"))
        #expect(error.contains("\(path): UNPROTECTED PRIVATE KEY FILE") && error.contains("chmod 600 \(path)"), "\(error)")
    }

    @Test("a file that is not a private key is named as such")
    func garbageKeyFile() async throws {
        let sshd = try SSHDFixture()
        let path = sshd.directory + "/not_a_key"
        try "this is not a key\n".write(toFile: path, atomically: true, encoding: .utf8)
        let error = try await expectStartFailure(sshd, identity: path)
        #expect(error.contains(path))
        #expect(error.contains("authentication failed"))
    }

    @Test("an encrypted key: used with its passphrase, explained without one or with a wrong one")
    func encryptedKey() async throws {
        let sshd = try SSHDFixture()
        let key = try sshd.makeClientKey(type: "ed25519", passphrase: "correct horse")

        var withPassphrase = settings(sshd, identity: key)
        #expect(IdentityFiles.needingPassphrase(withPassphrase) == [key])
        withPassphrase.passphrases = [key: "correct horse"]
        #expect(IdentityFiles.needingPassphrase(withPassphrase).isEmpty)
        let info = try await startAndStop(sshd, settings: withPassphrase)
        #expect(info.identityFile == key)

        let none = try await expectStartFailure(sshd, settings: settings(sshd, identity: key))
        #expect(none.contains("\(key): the key is encrypted and no passphrase was given"))

        var wrong = settings(sshd, identity: key)
        wrong.passphrases = [key: "battery staple"]
        let wrongMessage = try await expectStartFailure(sshd, settings: wrong)
        #expect(wrongMessage.contains("\(key): wrong passphrase"))
    }

    // The two RSA tests split on the linked libssh2: exactly one of them runs, and the other shows as skipped.
    @Test("an RSA key under libssh2 1.10 gets the rsa-sha2 explanation",
          .enabled(if: !SSH2Library.signsRSAWithSHA2, "needs a libssh2 older than 1.11 (SHA-1-only RSA signatures)"))
    func rsaKeyExplained() async throws {
        let sshd = try SSHDFixture()
        let rsa = try sshd.makeClientKey(type: "rsa")
        let error = try await expectStartFailure(sshd, identity: rsa)
        #expect(error.contains("RSA key refused"))
        #expect(error.contains("rsa-sha2"))
        #expect(error.contains("libssh2 \(SSH2Library.version)"))
    }

    @Test("an RSA key logs in where libssh2 signs with rsa-sha2",
          .enabled(if: SSH2Library.signsRSAWithSHA2, "needs libssh2 1.11 or newer (rsa-sha2 signatures)"))
    func rsaKeyWorks() async throws {
        let sshd = try SSHDFixture()
        let rsa = try sshd.makeClientKey(type: "rsa")
        let info = try await startAndStop(sshd, settings: settings(sshd, identity: rsa))
        #expect(info.identityFile == rsa)
    }

    @Test("nobody listening: a plain connection error")
    func connectionRefused() async throws {
        let sshd = try SSHDFixture()
        sshd.stop()
        let error = try await expectStartFailure(sshd)
        #expect(error.contains("cannot connect to 127.0.0.1:\(sshd.port): connection refused"))
    }

    // MARK: helpers

    private func startAndStop(_ sshd: SSHDFixture, policy: HostKeyPolicy? = nil, settings custom: ConnectionSettings? = nil) async throws -> SessionInfo {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = custom.map { HostTunnel(settings: $0, localForwards: [], eventLoop: group.next(), logger: testLogger) }
            ?? makeTunnel(sshd, targets: [], group: group, policy: policy)
        let info = try await tunnel.start()
        await tunnel.stop()
        try await group.shutdownGracefully()
        return info
    }

    private func expectStartFailure(_ sshd: SSHDFixture, identity: String? = nil, policy: HostKeyPolicy? = nil,
                                    settings custom: ConnectionSettings? = nil) async throws -> String {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = custom.map { HostTunnel(settings: $0, localForwards: [], eventLoop: group.next(), logger: testLogger) }
            ?? makeTunnel(sshd, targets: [], group: group, identity: identity, policy: policy)
        var message = ""
        do {
            _ = try await tunnel.start()
            Issue.record("the tunnel came up but should have been refused")
            await tunnel.stop()
        } catch {
            message = "\(error)"
        }
        try await group.shutdownGracefully()
        return message
    }
}
