/// How strictly to treat a server's host key (OpenSSH's `StrictHostKeyChecking`).
public struct HostKeyPolicy: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable {
        /// `yes`: only keys already in known_hosts.
        case strict = "yes"
        /// `ask` (OpenSSH's default): OpenSSH would prompt; we never prompt, so an unknown key is refused with the fix.
        case ask
        /// `accept-new`: record an unknown host's key, refuse a changed one.
        case acceptNew = "accept-new"
        /// `no`: record and accept unknown keys. A changed key is still refused: OpenSSH would connect with forwarding
        /// disabled, which for a tunnel is the same as refusing, so we say so plainly instead.
        case off = "no"
    }

    public var mode: Mode
    /// The user's known_hosts files (`UserKnownHostsFile`), read in order; new keys are recorded in the first.
    public var knownHostsFiles: [String]
    /// System-wide files (`GlobalKnownHostsFile`): read, never written.
    public var globalKnownHostsFiles: [String]
    /// Record new keys with hashed host names (`HashKnownHosts yes`).
    public var hashNewEntries: Bool

    public init(mode: Mode, knownHostsFiles: [String], globalKnownHostsFiles: [String] = [], hashNewEntries: Bool = false) {
        self.mode = mode
        self.knownHostsFiles = knownHostsFiles
        self.globalKnownHostsFiles = globalKnownHostsFiles
        self.hashNewEntries = hashNewEntries
    }

    /// Every file to read, user files first.
    var filesToRead: [String] { knownHostsFiles + globalKnownHostsFiles }
}

/// The verdict on a server's host key.
public enum HostKeyDecision: Sendable, Equatable {
    case trusted(KnownHostsEntry)
    /// Unknown host, recorded under `accept-new` (or `no`) in this file.
    case recordedNew(path: String)
    /// `StrictHostKeyChecking no` and the host is unknown and could not be recorded: accepted without a check.
    case unchecked
    /// Refused; the message says what, where and how to fix it.
    case refused(String)
}

/// Applies a `HostKeyPolicy` to a host key against known_hosts. Pure logic apart from reading and appending files.
public enum HostKeyVerifier {
    public static func verify(host: String, port: Int, key: SSHHostKey, policy: HostKeyPolicy) -> HostKeyDecision {
        let name = KnownHosts.lookupName(host: host, port: port)
        let fingerprint = Fingerprint.sha256(key.blob)
        let files = policy.knownHostsFiles
        let knownHosts: KnownHosts
        do {
            knownHosts = try KnownHosts(files: policy.filesToRead)
        } catch {
            return .refused("cannot read known hosts: \(error)")
        }

        switch knownHosts.check(host: host, port: port, keyType: key.typeName, key: key.blob) {
        case .match(let entry):
            return .trusted(entry)
        case .revoked(let entry):
            return .refused("host key for \(name) is REVOKED (\(entry.location)): \(key.typeName) \(fingerprint); refusing to connect")
        case .changed(let old):
            // Never connect through a changed key, whatever the policy: this is what a man-in-the-middle looks like.
            return .refused("""
                HOST KEY FOR \(name) HAS CHANGED: the server offered \(key.typeName) \(fingerprint), \
                but \(old.location) holds a different \(old.keyType) key. Someone could be intercepting the connection, \
                or the server was reinstalled. If you have checked the new key with the server's administrator, remove \
                the old entry with: ssh-keygen -R '\(name)' -f \(old.file)
                """)
        case .unknown(let others):
            let otherNote = others.isEmpty ? "" : " (known_hosts has \(others.map { "\($0.keyType) at \($0.location)" }.joined(separator: ", ")), but not this key type)"
            switch policy.mode {
            case .acceptNew, .off:
                guard let path = files.first else {
                    return policy.mode == .off ? .unchecked : .refused("unknown host key for \(name) and no known_hosts file to record it in")
                }
                do {
                    try KnownHosts.append(host: host, port: port, keyType: key.typeName, key: key.blob, to: path,
                                          hashed: policy.hashNewEntries)
                    return .recordedNew(path: path)
                } catch {
                    return policy.mode == .off ? .unchecked : .refused("cannot record the host key for \(name): \(error)")
                }
            case .strict, .ask:
                let file = files.first ?? "~/.ssh/known_hosts"
                return .refused("""
                    unknown host key for \(name): \(key.typeName) \(fingerprint)\(otherNote). \
                    StrictHostKeyChecking is \(policy.mode.rawValue) and tunnel never prompts. \
                    If this fingerprint is right, add the key with: ssh-keyscan -p \(port) -t \(key.typeName) \(host) >> \(file) \
                    (or set StrictHostKeyChecking accept-new for this host)
                    """)
            }
        }
    }

    /// Host-key algorithms to ask for, the types known_hosts already holds for this host first, so the server
    /// offers a key we can check instead of one we have never seen.
    public static func preferredAlgorithms(host: String, port: Int, policy: HostKeyPolicy) -> [String] {
        let known = (try? KnownHosts(files: policy.filesToRead))?.knownKeyTypes(host: host, port: port) ?? []
        var ordered: [String] = []
        for type in known {
            for algorithm in SSHHostKey.algorithms(forKeyType: type) where !ordered.contains(algorithm) {
                ordered.append(algorithm)
            }
        }
        for algorithm in SSHHostKey.defaultAlgorithms where !ordered.contains(algorithm) { ordered.append(algorithm) }
        return ordered
    }
}
