import Foundation
import SSH2

/// Tries the configured identity files one after another, as OpenSSH does, and explains every refusal.
/// Runs on the connection's event loop inside the pump; each step may need several round trips.
final class PublicKeyAuthenticator {
    private let user: String
    private let peer: String
    private var candidates: [String]
    private var index = 0
    private var currentKeyType: String?
    private var prepared = false
    private var failures: [String] = []
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
                            skip("\(path): the key is encrypted and no passphrase was given (run tunnel up on a terminal to be asked, or set SSH_ASKPASS with SSH_ASKPASS_REQUIRE=force)")
                            continue
                        }
                        currentPassphrase = passphrase
                    }
                    currentKeyType = info.keyType
                } catch {
                    skip(error.description)
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
                if error.kind == .socketDisconnected { throw .ssh(error) }
                skip(explain(error, path: path))
            }
        }
        let tried = failures.isEmpty ? "no identity file found (set IdentityFile)" : failures.joined(separator: "; ")
        throw .authenticationFailed("authentication failed for \(peer): \(tried)")
    }

    private func skip(_ reason: String) {
        failures.append(reason)
        index += 1
        prepared = false
        currentKeyType = nil
    }

    private func explain(_ error: SSH2Error, path: String) -> String {
        if currentKeyType == "ssh-rsa" && !SSH2Library.signsRSAWithSHA2 {
            return "\(path): RSA key refused; libssh2 \(SSH2Library.version) signs RSA keys only with ssh-rsa (SHA-1), "
                + "which OpenSSH 8.8 and later refuse by default (they want rsa-sha2-256/512, added in libssh2 1.11): "
                + "use an ed25519 or ecdsa key (ssh-keygen -t ed25519) or link libssh2 1.11 or later"
        }
        switch error.kind {
        case .authenticationFailed, .publicKeyUnverified:
            return "\(path): the server refused this key (is it in the server's authorized_keys for \(user)?)"
        case .keyFile where currentPassphrase != nil:
            return "\(path): wrong passphrase, or libssh2 cannot read this key (\(error.message))"
        case .keyFile:
            return "\(path): libssh2 could not use the key: \(error.message)"
        default:
            return "\(path): \(error.message.isEmpty ? error.description : error.message)"
        }
    }
}

/// Which identity files will need a passphrase, so a front end can ask for them before connecting
/// (asking from inside the event loop would stall every session on it).
public enum IdentityFiles {
    public static func needingPassphrase(_ settings: ConnectionSettings) -> [String] {
        PublicKeyAuthenticator.candidates(settings).filter { path in
            settings.passphrases[path] == nil && (try? PrivateKeyFileInfo.inspect(path: path))?.isEncrypted == true
        }
    }
}
