import Foundation
import SSH2

/// Tries the configured identity files one after another, as OpenSSH does, and records why each was refused.
/// `SessionAuthenticator` runs it for the publickey method. Each step reads key files and may decrypt a key (a
/// fraction of a second with bcrypt), so the session runs its steps on the thread pool, never on the event loop.
final class PublicKeyAuthenticator {
    private let user: String
    private let peer: String
    private var candidates: [String]
    private var index = 0
    private var currentKeyType: String?
    private var prepared = false
    private var attempts: [AuthenticationAttempt] = []
    private let passphrases: [String: String]
    private var currentPassphrase: String?

    init(settings: ConnectionSettings) {
        user = settings.user
        peer = settings.peer
        passphrases = settings.passphrases
        candidates = Self.candidates(settings)
    }

    /// OpenSSH's default identities are tried only when present; files the user named are reported if missing.
    static func candidates(_ settings: ConnectionSettings) -> [String] {
        settings.identityFilesGiven
            ? settings.identityFiles
            : settings.identityFiles.filter { FileManager.default.fileExists(atPath: $0) }
    }

    /// Returns the identity file that worked, nil while waiting for the server; throws when every key failed.
    func step(_ session: SSHSession) throws(TunnelError) -> String? {
        while index < candidates.count {
            let path = candidates[index]
            if !prepared {
                do {
                    let info = try PrivateKeyFileInfo.inspect(path: path)
                    currentPassphrase = nil
                    if info.isEncrypted {
                        guard let passphrase = passphrases[path] else {
                            skip(path, .encryptedWithoutPassphrase)
                            continue
                        }
                        currentPassphrase = passphrase
                    }
                    currentKeyType = info.keyType
                } catch {
                    skip(path, .unusable(error.description))
                    continue
                }
                prepared = true
            }
            do {
                switch try session.authenticate(user: user, privateKeyFile: path, passphrase: currentPassphrase) {
                case .wouldBlock: return nil
                case .done: return path
                }
            } catch {
                if error.isSessionFatal { throw .ssh(SSHFailure(error)) }
                skip(path, problem(error))
            }
        }
        throw .authenticationFailed(AuthenticationFailure(peer: peer, attempts: attempts))
    }

    private func skip(_ path: String, _ problem: AuthenticationAttempt.Problem) {
        attempts.append(AuthenticationAttempt(identityFile: path, problem: problem))
        index += 1
        prepared = false
        currentKeyType = nil
    }

    private func problem(_ error: SSH2Error) -> AuthenticationAttempt.Problem {
        if currentKeyType == "ssh-rsa" && !SSH2Library.signsRSAWithSHA2 {
            return .rsaNeedsSHA2(libssh2Version: SSH2Library.version)
        }
        switch error.kind {
        case .authenticationFailed, .publicKeyUnverified: return .refusedByServer(user: user)
        case .keyFile where currentPassphrase != nil: return .wrongPassphrase(error.message)
        case .keyFile: return .unusable("libssh2 could not use the key: \(error.message)")
        default: return .unusable(error.message.isEmpty ? error.description : error.message)
        }
    }
}

/// Which identity files will need a passphrase, so a front end can ask for them before connecting
/// (asking from inside the event loop would stall every session on it).
public enum IdentityFiles {
    public static func needingPassphrase(_ settings: ConnectionSettings) -> [String] {
        // No key file is used where publickey is switched off: nothing to ask.
        guard settings.authenticationMethods.contains(.publickey) else { return [] }
        return PublicKeyAuthenticator.candidates(settings).filter { path in
            settings.passphrases[path] == nil && (try? PrivateKeyFileInfo.inspect(path: path))?.isEncrypted == true
        }
    }
}
