import NIOConcurrencyHelpers
import TunnelEngine

/// What each running host is doing, kept from its tunnel's events, with its counters: what the metrics endpoint
/// reads at scrape time. Events arrive on the hosts' event loops, scrapes on the metrics server's: a lock guards it.
/// Nothing here is touched per forwarded byte; the byte counts stay in `TunnelCounters` and are read when asked.
public final class HostActivity: Sendable {
    /// The session's state, as the last event left it.
    public enum State: String, Sendable, CaseIterable {
        /// Listeners bound, first session not up yet.
        case connecting
        case up
        /// The session that was up ended; a new one is being set up.
        case reconnecting
        /// Attempts to set a session up are failing (wrong key, server down, ...); still retrying.
        case failing
        /// Authentication needs a person and nobody can be asked: not retrying until restarted
        /// (`TunnelEvent.needsAuthentication`).
        case needsAuthentication = "needs_authentication"
    }

    public struct Host: Sendable {
        public let name: String
        public let counters: TunnelCounters
        /// The host's forwards now, each with its counts (`HostTunnel.status.forwards`): read at scrape time, so a
        /// forward a reload added or removed shows up or goes with the next scrape.
        public var forwards: @Sendable () -> [TunnelStatus.Forward] = { [] }
        /// SSH sessions up now and kept up (`TunnelSessions`), read at scrape time.
        public var sessions: @Sendable () -> (up: Int, wanted: Int) = { (0, 1) }
        public var state = State.connecting
        /// Sessions set up again after one was lost.
        public var reconnects = 0
        /// Attempts to set a session up that failed.
        public var failedAttempts = 0
    }

    private let hosts = NIOLockedValueBox([Host]())

    public init() {}

    /// Every host added so far, in the order they were added.
    public var snapshot: [Host] { hosts.withLockedValue { $0 } }

    func add(name: String, counters: TunnelCounters, forwards: @escaping @Sendable () -> [TunnelStatus.Forward] = { [] },
             sessions: @escaping @Sendable () -> (up: Int, wanted: Int) = { (0, 1) }) {
        hosts.withLockedValue { $0.append(Host(name: name, counters: counters, forwards: forwards, sessions: sessions)) }
    }

    /// A host that could not be brought up (its ports were taken): it has no state to report.
    func remove(name: String) {
        hosts.withLockedValue { $0.removeAll { $0.name == name } }
    }

    func record(_ event: TunnelEvent, host name: String) {
        hosts.withLockedValue { hosts in
            guard let index = hosts.firstIndex(where: { $0.name == name }) else { return }
            Self.apply(event, to: &hosts[index])
        }
    }

    static func apply(_ event: TunnelEvent, to host: inout Host) {
        switch event {
        case .connected(_, let reconnected):
            host.state = .up
            if reconnected { host.reconnects += 1 }
        case .sessionLost:
            host.state = .reconnecting
        case .attemptFailed:
            host.failedAttempts += 1
            // Still "reconnecting" while the first attempts after a loss fail: the host was up, and comes back.
            if host.state != .reconnecting { host.state = .failing }
        case .needsAuthentication:
            host.failedAttempts += 1
            host.state = .needsAuthentication
        }
    }
}
