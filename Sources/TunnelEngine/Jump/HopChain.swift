import Logging
import NIOConcurrencyHelpers
import NIOCore

/// What happened at one jump host, for `tunnel check --connect` and status: its session's facts once it is up,
/// or why it is not.
public struct JumpHostStatus: Sendable {
    /// The jump host's Host name ("bastion").
    public var name: String
    /// "user@host:port".
    public var peer: String
    public enum State: Sendable {
        /// Not tried (an earlier hop failed), or being set up.
        case notTried
        case up(SessionInfo)
        case failed(TunnelError)
    }
    public var state: State
}

/// [ProxyJump] The jump-host sessions one tunnel goes through, kept between the tunnel's sessions, on the
/// tunnel's event loop.
///
/// Hop 0 is reached by TCP; hop i through a `direct-tcpip` channel of hop i-1 (`JumpLink`); the tunnel's own
/// session through the last hop. Each hop is a full `SSHConnection` with its own settings: its own host-key check,
/// authentication and keepalive. A hop that is lost ends every session that runs over it (its channels close,
/// so the next hop's link closes, and so on down to the tunnel's session); the next `link` then sets the chain up
/// again from the first hop that is not up, reusing the ones before it.
final class HopChain {
    let target: ConnectionSettings
    let eventLoop: EventLoop
    private let logger: Logger
    /// The hops' own counters: their channels are links, not forwarded connections of the tunnel.
    private let counters = TunnelCounters()
    private var sessions: [SSHConnection?]
    /// The first hop that was lost or failed since the chain was last asked for a link, and why.
    private var broken: (index: Int, error: TunnelError)?
    private var stopped = false
    typealias StatusBox = NIOLockedValueBox<[JumpHostStatus]>
    /// Each hop's state, read from any thread (`HostTunnel.jumpHostStatus`).
    let statusBox: StatusBox

    var hops: [ConnectionSettings] { target.jumpHosts }

    init(target: ConnectionSettings, eventLoop: EventLoop, logger: Logger) {
        self.target = target
        self.eventLoop = eventLoop
        self.logger = logger
        sessions = Array(repeating: nil, count: target.jumpHosts.count)
        statusBox = NIOLockedValueBox(target.jumpHosts.map { JumpHostStatus(name: $0.name, peer: $0.peer, state: .notTried) })
    }

    /// A link to the target through every hop, setting up the hops that are not up. Fails with
    /// `TunnelError.jumpHostFailed` naming the hop.
    func link(events: SessionLinkEvents) -> EventLoopFuture<TCPLink> {
        eventLoop.assertInEventLoop()
        broken = nil
        let target = self.target
        let lastIndex = hops.count - 1
        let this = NIOLoopBound(self, eventLoop: eventLoop)
        let timeout = TimeAmount.seconds(target.connectTimeoutSeconds)
        let events = NIOLoopBound(events, eventLoop: eventLoop)
        return hopUp(lastIndex).flatMap { (last: NIOLoopBound<SSHConnection>) in
            let last = last.value
            return JumpLink.open(through: last, to: target.hostName, port: target.port, timeout: timeout, events: events.value)
                .flatMapErrorThrowing { error in
                    let reason = (error as? JumpLink.OpenFailure)?.message ?? plainReason(error)
                    throw this.value.failure(at: lastIndex, .connectFailed(host: target.hostName, port: target.port, reason: reason))
                }
        }
    }

    /// Hop `index` up, with every hop before it.
    private func hopUp(_ index: Int) -> EventLoopFuture<NIOLoopBound<SSHConnection>> {
        if let session = sessions[index], session.isReady { return eventLoop.makeSucceededFuture(NIOLoopBound(session, eventLoop: eventLoop)) }
        guard !stopped else { return eventLoop.makeFailedFuture(TunnelError.stopped) }
        let settings = hops[index]
        let this = NIOLoopBound(self, eventLoop: eventLoop)
        let carrier: EventLoopFuture<NIOLoopBound<SSHConnection>?> = index == 0
            ? eventLoop.makeSucceededFuture(nil)
            : hopUp(index - 1).map { Optional($0) }
        return carrier.flatMap { carrier -> EventLoopFuture<NIOLoopBound<SSHConnection>> in
            this.value.connectHop(index, settings: settings, over: carrier?.value)
        }
    }

    private func connectHop(_ index: Int, settings: ConnectionSettings, over carrier: SSHConnection?) -> EventLoopFuture<NIOLoopBound<SSHConnection>> {
        // A session of this hop left from a failed attempt is replaced.
        sessions[index]?.close().whenComplete { _ in }
        var logger = self.logger
        logger[metadataKey: "jump"] = "\(settings.name)"
        let connection = SSHConnection(settings: settings, eventLoop: eventLoop, counters: counters, logger: logger)
        if let carrier {
            let timeout = TimeAmount.seconds(settings.connectTimeoutSeconds)
            connection.linkOpener = { events in
                JumpLink.open(through: carrier, to: settings.hostName, port: settings.port, timeout: timeout, events: events)
                    .flatMapErrorThrowing { error in
                        let reason = (error as? JumpLink.OpenFailure)?.message ?? plainReason(error)
                        throw TunnelError.connectFailed(host: settings.hostName, port: settings.port, reason: reason)
                    }
            }
        }
        sessions[index] = connection
        let this = NIOLoopBound(self, eventLoop: eventLoop)
        let bound = NIOLoopBound(connection, eventLoop: eventLoop)
        connection.closeFuture.whenSuccess { reason in
            let chain = this.value
            guard chain.sessions[index] === bound.value else { return }
            chain.sessions[index] = nil
            guard let reason, !chain.stopped else { return }
            chain.logger.debug("jump host \(settings.name) ended: \(reason)")
            chain.setStatus(index, .failed(reason))
            if chain.broken == nil || chain.broken!.index > index { chain.broken = (index, reason) }
        }
        setStatus(index, .notTried)
        return connection.connect().map { info in
            this.value.setStatus(index, .up(info))
            this.value.logger.debug("jump host \(settings.name) (\(settings.peer)) is up")
            return bound
        }.flatMapErrorThrowing { error in
            let reason = error as? TunnelError ?? .connectionLost(reason: plainReason(error))
            this.value.setStatus(index, .failed(reason))
            throw this.value.failure(at: index, reason)
        }
    }

    private func setStatus(_ index: Int, _ state: JumpHostStatus.State) {
        statusBox.withLockedValue { $0[index].state = state }
    }

    /// `reason` at hop `index`, as the tunnel reports it: "db via bastion: bastion: ...".
    private func failure(at index: Int, _ reason: TunnelError) -> TunnelError {
        if case .jumpHostFailed = reason { return reason }
        if case .stopped = reason { return reason }
        return .jumpHostFailed(target: target.name, path: hops.map(\.name), hop: hops[index].name, reason: reason)
    }

    /// Why the tunnel's session ended, naming the jump host when a lost hop took it down.
    func blame(_ error: TunnelError) -> TunnelError {
        if case .jumpHostFailed = error { return error }
        guard let broken else { return error }
        return failure(at: broken.index, broken.error)
    }

    /// Close every hop, the last first (each goodbye goes through the hops before it). Idempotent.
    func close() -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        stopped = true
        var done = eventLoop.makeSucceededVoidFuture()
        for session in sessions.reversed() {
            guard let session else { continue }
            let bound = NIOLoopBound(session, eventLoop: eventLoop)
            done = done.flatMap { bound.value.close() }
        }
        return done
    }
}
