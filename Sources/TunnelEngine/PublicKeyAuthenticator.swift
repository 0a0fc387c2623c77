import Foundation
import Logging
import SSH2

/// Tries the ssh-agent's keys, then the configured identity files one after another, as OpenSSH does, and records
/// why each was refused. `SessionAuthenticator` runs it for the publickey method. Each step reads key files, may
/// decrypt a key (a fraction of a second with bcrypt) or wait for the agent, so the session runs its steps on the
/// thread pool, never on the event loop.
final class PublicKeyAuthenticator {
    private let user: String
    private let peer: String
    private var candidates: [String]
    private var index = 0
    /// The agent's socket, until its keys are listed.
    private var agentSocket: String?
    private let identitiesOnly: Bool
    private let identityFiles: [String]
    private var agent: SSHAgentClient?
    private var agentKeys: [AgentIdentity] = []
    private var agentIndex = 0
    private var agentRefused = 0
    private var agentNotOffered = 0
    private let logger: Logger
    private var currentKeyType: String?
    private var prepared = false
    private var attempts: [AuthenticationAttempt] = []
    private let passphrases: [String: String]
    private var currentPassphrase: String?

    init(settings: ConnectionSettings, logger: Logger) {
        self.logger = logger
        agentSocket = settings.agentSocket
        identitiesOnly = settings.identitiesOnly
        identityFiles = settings.identityFiles
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
        if let path = agentSocket {
            agentSocket = nil
            listAgentKeys(path)
        }
        while agentIndex < agentKeys.count {
            let key = agentKeys[agentIndex]
            guard let agent else { break }
            var signError: AgentError?
            do {
                let step = try session.userauthPublicKey(user: user, publicKeyBlob: key.blob) { data -> [UInt8]? in
                    // libssh2 1.10 offers RSA keys as ssh-rsa (SHA-1): flags 0 asks for that algorithm.
                    let signed = Result { () throws(AgentError) -> [UInt8] in try agent.sign(data, with: key.blob) }
                    switch signed {
                    case .success(let blob): return SSHAgentClient.bareSignature(blob)
                    case .failure(let error):
                        signError = error
                        return nil
                    }
                }
                switch step {
                case .wouldBlock: return nil
                case .done: return "agent key \(key.comment.isEmpty ? key.keyType : key.comment)"
                }
            } catch {
                if error.isSessionFatal { throw .ssh(SSHFailure(error)) }
                let reason = signError.map { "the agent could not sign: \($0)" } ?? "refused by the server"
                logger.debug("publickey: agent key \(key.comment) (\(key.keyType)): \(reason)")
                agentRefused += 1
                agentIndex += 1
            }
        }
        if agent != nil {
            agent = nil
            if agentRefused + agentNotOffered > 0 {
                attempts.append(AuthenticationAttempt(identityFile: "agent",
                                                      problem: .agentKeys(refused: agentRefused, notOffered: agentNotOffered)))
            }
        }
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
                    // Said at once, as ssh does: the refusal is the user's only sign that the key is exposed.
                    if error.kind == .unprotected { logger.warning("\(error)") }
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

    /// Connects to the agent and takes its keys (those matching an identity file with `IdentitiesOnly yes`). An
    /// agent that cannot be reached is no error, as in OpenSSH: the identity files are tried as usual.
    private func listAgentKeys(_ path: String) {
        do {
            let client = try SSHAgentClient(path: path)
            var keys = try client.identities()
            logger.debug("publickey: the agent at \(path) holds \(keys.count) key(s)")
            if identitiesOnly {
                let allowed = Set(identityFiles.compactMap(Self.publicKeyBlob(ofIdentityFile:)))
                let offered = keys.filter { allowed.contains($0.blob) }
                agentNotOffered = keys.count - offered.count
                if agentNotOffered > 0 {
                    logger.debug("publickey: IdentitiesOnly yes: \(agentNotOffered) agent key(s) match no IdentityFile and are not offered")
                }
                keys = offered
            }
            agentKeys = keys
            agent = client
        } catch {
            logger.debug("publickey: no agent keys: \(error)")
        }
    }

    /// The public key blob in `path + ".pub"` (OpenSSH's one-line form: type, base64 blob, comment), if readable.
    static func publicKeyBlob(ofIdentityFile path: String) -> [UInt8]? {
        guard let text = try? String(contentsOfFile: path + ".pub", encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard fields.count >= 2, let data = Data(base64Encoded: String(fields[1])) else { return nil }
        return Array(data)
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
