import Foundation
import TunnelConfig

/// What one kept-up tunnel is doing now, for `tunnel status`: a copy taken at one moment (`HostTunnel.status`).
public struct TunnelStatus: Sendable, Equatable {
    /// The session's state; each case carries what is true only in it.
    public enum State: Sendable, Equatable {
        /// The first attempt is under way.
        case connecting
        /// A session is up.
        case up(UpSession)
        /// The session was lost or an attempt failed for a reason that may go away by itself (network, server
        /// down); the next attempt starts at `nextRetry`.
        case reconnecting(reason: String, nextRetry: Date)
        /// Attempts fail for a reason a person has to fix (host key, authentication, config): retried at the
        /// backoff's cap (`nextRetry`), or never (nil) for a tunnel that does not keep its session up.
        case failed(reason: String, nextRetry: Date?)
        /// Authentication needs a person (a password, a passphrase, a second factor) and nobody can be asked here:
        /// not retried until the tunnel is restarted (`TunnelEvent.needsAuthentication`).
        case needsAuthentication(reason: String)
        /// `stop()` was called.
        case stopped
    }

    /// The facts of a session that is up.
    public struct UpSession: Sendable, Equatable {
        public var since: Date
        /// "host:port" as configured (HostName, Port).
        public var server: String
        public var hostKeyType: String
        /// "SHA256:..."
        public var hostKeyFingerprint: String
        public var algorithms: NegotiatedAlgorithms
    }

    /// One forward of the tunnel, with its counts.
    public struct Forward: Sendable, Equatable {
        public enum Kind: String, Sendable, Equatable, Codable { case local, dynamic, remote }
        public var kind: Kind
        /// A short name that stays the same for the life of the forward (across reconnects, and for a remote
        /// forward whatever port the server picked): the kind's letter, as in `ssh -L/-D/-R`, then where it
        /// listens as configured: "L127.0.0.1:5432", "D127.0.0.1:1080", "Rlocalhost:9000". Metrics label it.
        public var id: String
        /// Where clients connect: "127.0.0.1:8080", "/run/app.sock", "remote localhost:9000" (the server's side).
        public var listen: String
        /// Where connections go: "db:5432", "SOCKS and HTTP proxy", "127.0.0.1:3000".
        public var target: String
        public var counts: TunnelCounters.ForwardCounts
    }

    public var name: String
    public var state: State
    /// Sessions set up after the first one.
    public var reconnects: Int
    /// The last reason a session or attempt ended, kept after recovery (nil: none yet).
    public var lastError: String?
    public var forwards: [Forward]
    /// Totals over the forwards (and connections counted before a forward was known).
    public var totals: TunnelCounters.Snapshot
    /// [TunnelSessions] SSH sessions up now, and kept up (1 unless `TunnelSessions` asks for more).
    public var sessionsUp = 0
    public var sessionsWanted = 1
    /// Forwarded connections each session carries now (kept only with more than one session).
    public var sessionConnections: [Int] = []
}
