import TunnelEngine

/// What to do about a refused host key, in commands a person can paste. Kept here, in the layer that talks to the
/// user, so the engine's refusal stays a plain statement of fact that an embedding app can word its own way.
public enum HostKeyAdvice {
    /// The fix for `refusal`, or nil when there is nothing safe to suggest (a revoked key must stay refused).
    public static func advice(for refusal: HostKeyRefusal) -> String? {
        switch refusal {
        case .unknownKey(let unknown):
            guard let file = unknown.recordFile else {
                return "Set UserKnownHostsFile to a file tunnel may record new keys in, or add the key to a GlobalKnownHostsFile."
            }
            return "If this fingerprint is right, add the key with: "
                + "ssh-keyscan -p \(unknown.port) -t \(unknown.keyType) \(unknown.host) >> \(file) "
                + "(or set StrictHostKeyChecking accept-new for this host)"
        case .changedKey(let name, _, _, let old):
            return "If you have checked the new key with the server's administrator, remove the old entry with: "
                + "ssh-keygen -R '\(name)' -f \(old.file)"
        case .cannotReadKnownHosts(let path, _):
            return "Make \(path) readable, or point UserKnownHostsFile/GlobalKnownHostsFile elsewhere."
        case .cannotRecord(_, let path, _):
            return "Make \(path) writable, or add the key by hand."
        case .revoked, .noHostKey:
            return nil
        }
    }

    /// The refusal and its advice as one line, as the service logs it.
    public static func explain(_ refusal: HostKeyRefusal) -> String {
        guard let advice = advice(for: refusal) else { return refusal.description }
        return "\(refusal.description) \(advice)"
    }
}
