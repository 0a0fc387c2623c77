import NIOConcurrencyHelpers

/// Per-tunnel counters, with the same counts kept per forward. Written on the tunnel's event loop, read from
/// anywhere (status, tests), so a lock guards them: one lock taken per update, as before per-forward counts existed
/// (the forward's counts sit in an array beside the totals and are updated under that same lock, by index: no
/// extra lock and no hashing on the data path). They belong to the tunnel, not to a session, so they survive a
/// reconnect.
public final class TunnelCounters: Sendable {
    /// One forward's counts (a `LocalForward`, `DynamicForward` or `RemoteForward` line).
    public struct ForwardCounts: Sendable, Equatable {
        public var connectionsAccepted = 0
        public var connectionsActive = 0
        public var channelOpenFailures = 0
        public var bytesSent = 0      // local client -> SSH server
        public var bytesReceived = 0  // SSH server -> local client
        public init() {}
    }

    public struct Snapshot: Sendable, Equatable {
        public var connectionsAccepted = 0
        public var connectionsActive = 0
        public var channelOpenFailures = 0
        public var bytesSent = 0      // local client -> SSH server
        public var bytesReceived = 0  // SSH server -> local client
        public var sessionsEstablished = 0
        /// Keepalive probes sent (after `ServerAliveInterval` of silence from the server).
        public var keepalivesSent = 0
        /// Per forward, in the tunnel's forward order (`HostTunnel.forwardIndex`): local, dynamic, then remote.
        public var forwards: [ForwardCounts] = []
    }

    private let state: NIOLockedValueBox<Snapshot>

    public init(forwardCount: Int = 0) {
        var initial = Snapshot()
        initial.forwards = Array(repeating: ForwardCounts(), count: forwardCount)
        state = NIOLockedValueBox(initial)
    }

    public var snapshot: Snapshot { state.withLockedValue { $0 } }

    /// `forward`: the forward's index, or nil when unknown (counted in the totals only).
    func connectionAccepted(forward: Int? = nil) {
        update(forward) { $0.connectionsAccepted += 1; $0.connectionsActive += 1 } total: { $0.connectionsAccepted += 1; $0.connectionsActive += 1 }
    }
    func connectionEnded(forward: Int? = nil) {
        update(forward) { $0.connectionsActive -= 1 } total: { $0.connectionsActive -= 1 }
    }
    func recordOpenFailure(forward: Int? = nil) {
        update(forward) { $0.channelOpenFailures += 1 } total: { $0.channelOpenFailures += 1 }
    }
    func addSent(_ count: Int, forward: Int? = nil) {
        update(forward) { $0.bytesSent += count } total: { $0.bytesSent += count }
    }
    func addReceived(_ count: Int, forward: Int? = nil) {
        update(forward) { $0.bytesReceived += count } total: { $0.bytesReceived += count }
    }
    func sessionEstablished() { state.withLockedValue { $0.sessionsEstablished += 1 } }
    func keepaliveSent() { state.withLockedValue { $0.keepalivesSent += 1 } }

    private func update(_ forward: Int?, _ change: (inout ForwardCounts) -> Void, total: (inout Snapshot) -> Void) {
        state.withLockedValue { snapshot in
            total(&snapshot)
            if let forward, snapshot.forwards.indices.contains(forward) { change(&snapshot.forwards[forward]) }
        }
    }
}
