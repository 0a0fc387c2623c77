import SSH2

/// Why a tunnel could not come up or went down, in words a user can act on. Each case keeps the underlying detail
/// (libssh2's message, the file and line of a known_hosts entry) so nothing is lost on the way to the log.
public enum TunnelError: Error, Sendable, CustomStringConvertible {
    /// TCP connection to the SSH server failed.
    case connectFailed(host: String, port: Int, reason: String)
    /// The server closed or the link broke.
    case connectionLost(reason: String)
    /// Handshake, authentication or another SSH step failed; keeps libssh2's error.
    case ssh(SSH2Error)
    /// The host key was refused (unknown, changed, revoked, ...); the refusal carries the facts, and
    /// `HostKeyAdvice` in TunnelService turns them into the fix.
    case hostKeyRefused(HostKeyRefusal)
    /// No identity could log in; the message lists what was tried and why each failed.
    case authenticationFailed(String)
    /// A local listener could not be bound.
    case bindFailed(address: String, reason: String)
    /// The handshake or authentication took too long.
    case timedOut(String)
    /// Stopped on request.
    case stopped

    public var description: String {
        switch self {
        case .connectFailed(let host, let port, let reason): return "cannot connect to \(host):\(port): \(reason)"
        case .connectionLost(let reason): return "connection lost: \(reason)"
        case .ssh(let error): return error.description
        case .hostKeyRefused(let refusal): return refusal.description
        case .authenticationFailed(let message): return message
        case .bindFailed(let address, let reason): return "cannot listen on \(address): \(reason)"
        case .timedOut(let what): return "timed out: \(what)"
        case .stopped: return "stopped"
        }
    }
}
