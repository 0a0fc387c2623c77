import NIOConcurrencyHelpers

/// Per-tunnel counters. Written on the tunnel's event loop, read from anywhere (status, tests), so a lock guards them.
/// They belong to the tunnel, not to a session, so they survive a reconnect.
public final class TunnelCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var connectionsAccepted = 0
        public var connectionsActive = 0
        public var channelOpenFailures = 0
        public var bytesSent = 0      // local client -> SSH server
        public var bytesReceived = 0  // SSH server -> local client
        public var sessionsEstablished = 0
        /// Keepalive probes sent (after `ServerAliveInterval` of silence from the server).
        public var keepalivesSent = 0
    }

    private let state = NIOLockedValueBox(Snapshot())

    public init() {}

    public var snapshot: Snapshot { state.withLockedValue { $0 } }

    func connectionAccepted() { state.withLockedValue { $0.connectionsAccepted += 1; $0.connectionsActive += 1 } }
    func connectionEnded() { state.withLockedValue { $0.connectionsActive -= 1 } }
    func recordOpenFailure() { state.withLockedValue { $0.channelOpenFailures += 1 } }
    func addSent(_ count: Int) { state.withLockedValue { $0.bytesSent += count } }
    func addReceived(_ count: Int) { state.withLockedValue { $0.bytesReceived += count } }
    func sessionEstablished() { state.withLockedValue { $0.sessionsEstablished += 1 } }
    func keepaliveSent() { state.withLockedValue { $0.keepalivesSent += 1 } }
}
