import SSH2
import TunnelConfig

/// Why a tunnel could not come up or went down, in words a user can act on. Each case keeps the underlying detail
/// (libssh2's message, the file and line of a known_hosts entry) so nothing is lost on the way to the log.
/// Advice on what to do about it (which command to run) is the front end's to add: see TunnelService.
public enum TunnelError: Error, Sendable, CustomStringConvertible {
    /// TCP connection to the SSH server failed.
    case connectFailed(host: String, port: Int, reason: String)
    /// The server closed or the link broke.
    case connectionLost(reason: String)
    /// Handshake or another SSH step failed; keeps libssh2's message.
    case ssh(SSHFailure)
    /// The host key was refused (unknown, changed, revoked, ...); the refusal carries the facts, and
    /// `HostKeyAdvice` in TunnelService turns them into the fix.
    case hostKeyRefused(HostKeyRefusal)
    /// No identity could log in: what was tried, and why each failed.
    case authenticationFailed(AuthenticationFailure)
    /// A local listener could not be bound.
    case bindFailed(address: String, reason: String)
    /// The handshake or authentication took too long.
    case timedOut(String)
    /// The server refused a remote forward and `ExitOnForwardFailure yes` is set. `forward` names it
    /// ("RemoteForward localhost:9000 -> 127.0.0.1:3000"), `reason` is what the server said, as far as it said.
    case remoteForwardRefused(forward: String, reason: String)
    /// The server stopped answering: nothing from it for `probes` keepalives over `seconds` (a frozen server, a
    /// dropped NAT entry, a pulled cable: TCP may still look open).
    case keepaliveTimeout(probes: Int, seconds: Int)
    /// Reaching the server through its jump hosts (`ProxyJump`) failed at `hop`, the Host name of one jump host:
    /// the hop could not be set up or was lost (`reason` is its own error), or it could not open the connection
    /// to the next host. `path` lists every jump host in order, `target` is the tunnel's name.
    indirect case jumpHostFailed(target: String, path: [String], hop: String, reason: TunnelError)
    /// Stopped on request.
    case stopped

    public var description: String {
        switch self {
        case .connectFailed(let host, let port, let reason): return "cannot connect to \(host):\(port): \(reason)"
        case .connectionLost(let reason): return "connection lost: \(reason)"
        case .ssh(let failure): return failure.description
        case .hostKeyRefused(let refusal): return refusal.description
        case .authenticationFailed(let failure): return failure.description
        case .bindFailed(let address, let reason): return "cannot listen on \(address): \(reason)"
        case .timedOut(let what): return "timed out: \(what)"
        case .remoteForwardRefused(let forward, let reason):
            return "\(forward): the server refused to listen: \(reason) (ExitOnForwardFailure yes)"
        case .keepaliveTimeout(let probes, let seconds):
            if probes == 0 { return "connection lost: no data from the server in \(seconds) s" }
            return "connection lost: no reply to \(probes) keepalive\(probes == 1 ? "" : "s") in \(seconds) s"
        case .jumpHostFailed(let target, let path, let hop, let reason):
            return "\(target) via \(path.joined(separator: ", ")): \(hop): \(reason)"
        case .stopped: return "stopped"
        }
    }
}

extension TunnelError {
    /// Failures that retrying soon does not cure: the server refused every key, or the host key is not trusted
    /// (a key may be installed, or known_hosts fixed, later). They are retried at the backoff's cap, never in a
    /// tight loop; a changed host key is refused again on every attempt.
    public var waitsForCap: Bool {
        switch self {
        case .authenticationFailed, .hostKeyRefused: return true
        case .jumpHostFailed(_, _, _, let reason): return reason.waitsForCap
        default: return false
        }
    }

    /// Authentication that only a person could complete (a password, keyboard-interactive answers, a key's
    /// passphrase) with nobody to ask: trying again cannot help, so a kept-up tunnel waits in the "needs
    /// authentication" state instead of retrying (`TunnelEvent.needsAuthentication`).
    public var needsPerson: Bool {
        switch self {
        case .authenticationFailed(let failure):
            return failure.attempts.contains { attempt in
                switch attempt.problem {
                case .nobodyToAsk, .encryptedWithoutPassphrase: return true
                default: return false
                }
            }
        case .jumpHostFailed(_, _, _, let reason): return reason.needsPerson
        default: return false
        }
    }
}

/// A failed SSH step as libssh2 reported it, without exposing the SSH2 layer's types to embedders.
public struct SSHFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// What we were doing, in plain words ("SSH handshake").
    public var operation: String
    /// libssh2's own message, verbatim (may be empty).
    public var message: String
    /// libssh2's error code (`LIBSSH2_ERROR_*`, negative), for logs and bug reports.
    public var code: Int32

    public init(operation: String, message: String, code: Int32) {
        self.operation = operation
        self.message = message
        self.code = code
    }

    init(_ error: SSH2Error) {
        self.init(operation: error.operation, message: error.detail, code: error.code)
    }

    public var description: String { message.isEmpty ? operation : "\(operation): \(message)" }
}

/// Every method and identity that was tried for a session, and why each one failed.
public struct AuthenticationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// "root@127.0.0.1:2222".
    public var peer: String
    public var attempts: [AuthenticationAttempt]
    /// The methods the server offered, when it said (nil: not asked, e.g. a failure before the question).
    public var offered: [String]?
    /// The methods the config allowed, in order (for the message when none of them is offered).
    public var allowed: [AuthenticationMethod]?

    public init(peer: String, attempts: [AuthenticationAttempt], offered: [String]? = nil, allowed: [AuthenticationMethod]? = nil) {
        self.peer = peer
        self.attempts = attempts
        self.offered = offered
        self.allowed = allowed
    }

    public var description: String { describe { $0.description } }

    /// "tried publickey (~/.ssh/id_ed25519), keyboard-interactive": the methods in the order they were tried,
    /// with the key files publickey tried.
    public var summary: String {
        var methods: [AuthenticationMethod] = []
        for attempt in attempts where !methods.contains(attempt.method) { methods.append(attempt.method) }
        let parts = methods.map { method -> String in
            guard method == .publickey else { return method.rawValue }
            let files = attempts.filter { $0.method == .publickey }.map(\.identityFile)
            return "publickey (\(files.joined(separator: ", ")))"
        }
        return "tried " + parts.joined(separator: ", ")
    }

    /// The message with each attempt worded by `attempt` (a front end adds its own advice to some).
    public func describe(_ attempt: (AuthenticationAttempt) -> String) -> String {
        if attempts.isEmpty {
            if let offered, let allowed {
                let allowedText = allowed.isEmpty ? "none" : allowed.map(\.rawValue).joined(separator: ", ")
                return "authentication failed for \(peer): the server offers \(offered.joined(separator: ", ")), "
                    + "none of them allowed by the config (allowed here: \(allowedText); see PreferredAuthentications, "
                    + "PubkeyAuthentication, KbdInteractiveAuthentication, PasswordAuthentication)"
            }
            return "authentication failed for \(peer): no identity file found (set IdentityFile)"
        }
        let details = attempts.map(attempt).joined(separator: "; ")
        // Only key files tried: the details say it all (and name each file).
        if attempts.allSatisfy({ $0.method == .publickey }) { return "authentication failed for \(peer): \(details)" }
        let allRefused = attempts.allSatisfy(\.problem.isRefusal)
        return "authentication failed for \(peer): \(summary): "
            + (allRefused ? "all refused by the server (\(details))" : details)
    }
}

/// One identity file that did not log in.
public struct AuthenticationAttempt: Sendable, Equatable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        /// The key is encrypted and no passphrase was given (the front end knows how one could be asked for).
        case encryptedWithoutPassphrase
        /// The server does not accept this key for this user.
        case refusedByServer(user: String)
        /// An RSA key that this libssh2 can only sign with ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses.
        case rsaNeedsSHA2(libssh2Version: String)
        /// The passphrase was wrong, or libssh2 cannot read this key.
        case wrongPassphrase(String)
        /// The file is missing, not a key, or unusable; the text says which.
        case unusable(String)
        /// Password or keyboard-interactive: the server refused the answers, `tries` times
        /// (`NumberOfPasswordPrompts` bounds them).
        case answersRefused(tries: Int)
        /// Password or keyboard-interactive: the person asked gave no answer.
        case noAnswer
        /// Password or keyboard-interactive: the method needs a person to answer, and nobody can be asked here
        /// (`ConnectionSettings.askSecret` is nil).
        case nobodyToAsk
        /// publickey through the ssh-agent: `refused` keys the server did not take, `notOffered` left out because
        /// `IdentitiesOnly yes` and they match no IdentityFile.
        case agentKeys(refused: Int, notOffered: Int)

        /// The server said no (as opposed to: nothing could be sent).
        public var isRefusal: Bool {
            switch self {
            case .refusedByServer, .answersRefused: return true
            case .agentKeys(let refused, _): return refused > 0
            default: return false
            }
        }
    }

    /// The key file for publickey attempts; empty for the methods that ask a person.
    public var identityFile: String
    public var problem: Problem
    public var method: AuthenticationMethod = .publickey

    public init(identityFile: String, problem: Problem, method: AuthenticationMethod = .publickey) {
        self.identityFile = identityFile
        self.problem = problem
        self.method = method
    }

    public var description: String {
        switch problem {
        case .encryptedWithoutPassphrase:
            return "\(identityFile): the key is encrypted and no passphrase was given"
        case .refusedByServer(let user):
            return "\(identityFile): the server refused this key (is it in the server's authorized_keys for \(user)?)"
        case .rsaNeedsSHA2(let version):
            return "\(identityFile): RSA key refused; libssh2 \(version) signs RSA keys only with ssh-rsa (SHA-1), "
                + "which OpenSSH 8.8 and later refuse by default (they want rsa-sha2-256/512, added in libssh2 1.11): "
                + "use an ed25519 or ecdsa key (ssh-keygen -t ed25519) or link libssh2 1.11 or later"
        case .wrongPassphrase(let detail):
            return "\(identityFile): wrong passphrase, or libssh2 cannot read this key (\(detail))"
        case .unusable(let detail):
            let subject = method == .publickey ? identityFile : method.rawValue
            return detail.hasPrefix(subject) ? detail : "\(subject): \(detail)"
        case .answersRefused(let tries):
            let what = method == .password ? "the password" : "the answers"
            return "\(method.rawValue): the server refused \(what) (\(tries) \(tries == 1 ? "try" : "tries"), NumberOfPasswordPrompts)"
        case .noAnswer:
            return "\(method.rawValue): no answer was given"
        case .agentKeys(let refused, let notOffered):
            func keys(_ n: Int) -> String { n == 1 ? "1 key" : "\(n) keys" }
            var parts: [String] = []
            if refused > 0 { parts.append("\(keys(refused)) refused by the server") }
            if notOffered > 0 { parts.append("\(keys(notOffered)) not offered (IdentitiesOnly yes, and no IdentityFile's .pub matches)") }
            return "\(identityFile): " + parts.joined(separator: "; ")
        case .nobodyToAsk:
            return "\(method.rawValue): needs a person to answer, and nobody can be asked here: use a key (IdentityFile) or the agent"
        }
    }
}
