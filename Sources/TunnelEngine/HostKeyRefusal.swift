import TunnelConfig

/// Why a server's host key was not accepted, with the facts a front end needs to say what to do about it.
/// `description` states the problem only; advice (which command fixes it) is the business of the layer that talks
/// to the user (`HostKeyAdvice` in TunnelService), so an embedding app can word it its own way.
public enum HostKeyRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server sent no host key at all.
    case noHostKey(name: String)
    /// No known_hosts entry of this key type for the host, and the policy does not let us record one.
    case unknownKey(UnknownHostKey)
    /// The host is known with a different key of the same type: possible impersonation.
    case changedKey(name: String, keyType: String, fingerprint: String, old: KnownHostsEntry)
    /// A `@revoked` entry holds this very key.
    case revoked(name: String, keyType: String, fingerprint: String, entry: KnownHostsEntry)
    /// A known_hosts file exists but cannot be read; ignoring it could hide a revocation.
    case cannotReadKnownHosts(path: String, reason: String)
    /// `accept-new` could not append the new key to `path`.
    case cannotRecord(name: String, path: String, reason: String)

    /// The facts of an unknown key.
    public struct UnknownHostKey: Sendable, Equatable {
        /// The host and port as configured (what `ssh-keyscan` needs).
        public var host: String
        public var port: Int
        /// The name known_hosts looks up: "host" or "[host]:port", lowercased.
        public var name: String
        public var keyType: String
        /// "SHA256:..." as `ssh-keygen -l` prints it.
        public var fingerprint: String
        /// Entries of other key types for the same host (the server may have more than one key).
        public var otherKnownKeys: [KnownHostsEntry]
        public var mode: HostKeyPolicy.Mode
        /// The first `UserKnownHostsFile`, where new keys are recorded; nil for `UserKnownHostsFile none`.
        public var recordFile: String?

        public init(host: String, port: Int, name: String, keyType: String, fingerprint: String,
                    otherKnownKeys: [KnownHostsEntry], mode: HostKeyPolicy.Mode, recordFile: String?) {
            self.host = host
            self.port = port
            self.name = name
            self.keyType = keyType
            self.fingerprint = fingerprint
            self.otherKnownKeys = otherKnownKeys
            self.mode = mode
            self.recordFile = recordFile
        }
    }

    public var description: String {
        switch self {
        case .noHostKey(let name):
            return "the server \(name) sent no host key"
        case .unknownKey(let unknown):
            var text = "unknown host key for \(unknown.name): \(unknown.keyType) \(unknown.fingerprint)"
            if !unknown.otherKnownKeys.isEmpty {
                let others = unknown.otherKnownKeys.map { "\($0.keyType) at \($0.location)" }.joined(separator: ", ")
                text += " (known_hosts has \(others), but not this key type)"
            }
            switch unknown.mode {
            case .strict, .ask:
                return text + ". StrictHostKeyChecking is \(unknown.mode.rawValue) and tunnel never prompts."
            case .acceptNew, .off:
                // Only refused under these modes when there is no file to record the key in.
                return text + ", and no known_hosts file to record it in (UserKnownHostsFile none)."
            }
        case .changedKey(let name, let keyType, let fingerprint, let old):
            return """
                HOST KEY FOR \(name) HAS CHANGED: the server offered \(keyType) \(fingerprint), \
                but \(old.location) holds a different \(old.keyType) key. Someone could be intercepting the connection, \
                or the server was reinstalled.
                """
        case .revoked(let name, let keyType, let fingerprint, let entry):
            return "host key for \(name) is REVOKED (\(entry.location)): \(keyType) \(fingerprint); refusing to connect"
        case .cannotReadKnownHosts(let path, let reason):
            return "cannot read known hosts: \(path): \(reason)"
        case .cannotRecord(let name, let path, let reason):
            return "cannot record the host key for \(name): \(path): \(reason)"
        }
    }
}
