import SSH2
import TunnelConfig

/// How strictly to treat a server's host key (OpenSSH's `StrictHostKeyChecking`).
public struct HostKeyPolicy: Sendable, Equatable {
    public enum Mode: String, Sendable, Equatable {
        /// `yes`: only keys already in known_hosts.
        case strict = "yes"
        /// `ask` (OpenSSH's default): OpenSSH would prompt; we never prompt, so an unknown key is refused.
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
    public var filesToRead: [String] { knownHostsFiles + globalKnownHostsFiles }
}

/// The verdict on a server's host key.
public enum HostKeyDecision: Sendable, Equatable {
    case trusted(KnownHostsEntry)
    /// Unknown host whose key the policy accepts once recorded in `path`: pass it to `HostKeyVerifier.record`,
    /// which writes the file, so the caller chooses the thread that does the I/O.
    case recordNew(path: String)
    /// Unknown host, recorded under `accept-new` (or `no`) in this file: what `record` returns on success.
    case recordedNew(path: String)
    /// `StrictHostKeyChecking no` and the host is unknown and could not be recorded: accepted without a check.
    case unchecked
    case refused(HostKeyRefusal)
}

/// Applies a `HostKeyPolicy` to a server's host key. `verify` and `preferredAlgorithms` are pure and cheap (fit for
/// the event loop); `loadKnownHosts` reads files and `record` appends to one, so run those where blocking is fine.
public enum HostKeyVerifier {
    /// Reads every known_hosts file of `policy` (missing files count as empty).
    public static func loadKnownHosts(for policy: HostKeyPolicy) throws(HostKeyRefusal) -> KnownHosts {
        do {
            return try KnownHosts(files: policy.filesToRead)
        } catch {
            throw .cannotReadKnownHosts(path: error.path, reason: error.message)
        }
    }

    /// Judges `key` (its known_hosts type name and wire blob) against already loaded `knownHosts`. Writes nothing:
    /// an unknown key the policy would accept comes back as `.recordNew`.
    public static func verify(host: String, port: Int, keyType: String, key: [UInt8], policy: HostKeyPolicy,
                              knownHosts: KnownHosts) -> HostKeyDecision {
        let name = KnownHosts.lookupName(host: host, port: port)
        let fingerprint = Fingerprint.sha256(key)
        switch knownHosts.check(host: host, port: port, keyType: keyType, key: key) {
        case .match(let entry):
            return .trusted(entry)
        case .revoked(let entry):
            return .refused(.revoked(name: name, keyType: keyType, fingerprint: fingerprint, entry: entry))
        case .changed(let old):
            // Never connect through a changed key, whatever the policy: this is what a man-in-the-middle looks like.
            return .refused(.changedKey(name: name, keyType: keyType, fingerprint: fingerprint, old: old))
        case .unknown(let others):
            let recordFile = policy.knownHostsFiles.first
            switch policy.mode {
            case .acceptNew, .off:
                if let recordFile { return .recordNew(path: recordFile) }
                if policy.mode == .off { return .unchecked }
            case .strict, .ask:
                break
            }
            return .refused(.unknownKey(.init(
                host: host, port: port, name: name, keyType: keyType, fingerprint: fingerprint,
                otherKnownKeys: others, mode: policy.mode, recordFile: recordFile)))
        }
    }

    /// Appends the key of a `.recordNew(path:)` decision to `path` (creating it and its directory if needed).
    /// Returns `.recordedNew(path:)`; if the file cannot be written, `.unchecked` under `no` (OpenSSH connects
    /// anyway) and a `.cannotRecord` refusal under `accept-new`.
    public static func record(host: String, port: Int, keyType: String, key: [UInt8], in path: String,
                              policy: HostKeyPolicy) -> HostKeyDecision {
        do {
            try KnownHosts.append(host: host, port: port, keyType: keyType, key: key, to: path,
                                  hashed: policy.hashNewEntries)
            return .recordedNew(path: path)
        } catch {
            if policy.mode == .off { return .unchecked }
            return .refused(.cannotRecord(name: KnownHosts.lookupName(host: host, port: port),
                                          path: error.path, reason: error.message))
        }
    }

    /// Host-key algorithms to ask for, the types known_hosts already holds for this host first, so the server
    /// offers a key we can check instead of one we have never seen.
    public static func preferredAlgorithms(host: String, port: Int, knownHosts: KnownHosts) -> [String] {
        var ordered: [String] = []
        for type in knownHosts.knownKeyTypes(host: host, port: port) {
            for algorithm in SSHHostKey.algorithms(forKeyType: type) where !ordered.contains(algorithm) {
                ordered.append(algorithm)
            }
        }
        for algorithm in SSHHostKey.defaultAlgorithms where !ordered.contains(algorithm) { ordered.append(algorithm) }
        return ordered
    }
}
