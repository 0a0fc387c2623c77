import Logging
import NIOCore
import NIOPosix
import SSH2
import TunnelConfig

/// Where one remote forward stands, for status (`HostTunnel.remoteForwardStatus`).
public struct RemoteForwardStatus: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Not listening yet: no session, or the request is with the server.
        case pending
        /// The server listens on `port` (for `RemoteForward 0`, the port it chose).
        case listening(port: Int)
        /// The server refused; asked again with backoff (unless `ExitOnForwardFailure yes`).
        case refused(reason: String)
    }

    public var forward: RemoteForwardSpec
    public var state: State
    /// Its place in the tunnel's counts (`TunnelCounters.Snapshot.forwards`).
    var counterIndex: Int? = nil

    /// "remote localhost:41234 -> 127.0.0.1:3000": the port the server actually listens on once it does.
    public var description: String {
        guard case .listening(let port) = state else { return forward.description }
        var bound = forward
        bound.listenPort = port
        return bound.description
    }
}

/// The remote forwards (`ssh -R`) of one session: asks the server to listen for each, asks again with backoff when
/// it refused, and takes the connections it forwards.
///
/// One per `SSHConnection`, made with the session's settings, so a new session (reconnect) asks for every forward
/// again. The session drives it from its pump in two calls: `request` before anything else reads the transport
/// (libssh2 reads one packet at a time while it waits for the answer, so a connection the server forwards right
/// after saying yes is parsed only once the listener exists; parsed earlier, libssh2 would refuse it as "not
/// requested"), and `accept` after the burst was parsed. Everything happens on the session's event loop.
final class RemoteForwards {
    private enum State {
        /// To be asked for: the session just came up, or a retry came due.
        case due
        /// The `tcpip-forward` request is with the server. `messagesBefore`: the server's SSH_MSG_DEBUG count when it
        /// was sent, so a refusal is reported with what the server said about this request and nothing older.
        case asking(messagesBefore: Int)
        case listening(SSHRemoteListener)
        /// Refused; asked again at `retryAt`.
        case refused(reason: String, retryAt: NIODeadline)
        /// Removed (a reload) while the server listened: `cancel-tcpip-forward` is being sent; then the entry goes.
        case cancelling(SSHRemoteListener)
    }

    private struct Entry {
        let spec: RemoteForwardSpec
        /// Its place in the tunnel's counts.
        let counterIndex: Int?
        var state = State.due
        var backoff = Backoff(initial: 1, cap: 60)
        /// Removed while its request was with the server: cancelled once answered (libssh2 has no way to drop a
        /// request in flight, and the server may say yes).
        var removed = false
        /// [TunnelSessions] Moved here from a lost session: the server may still hold the port for the lost one,
        /// so a refusal is retried even with `ExitOnForwardFailure` (which would end this healthy session).
        var moved = false
    }

    private var entries: [Entry]
    private let exitOnFailure: Bool
    private let eventLoop: EventLoop
    private let logger: Logger
    private var retryTimer: Scheduled<Void>?
    private var ended = false

    /// Called with every forward's status after a change (on the loop).
    var onChange: (([RemoteForwardStatus]) -> Void)?
    /// Called when a retry comes due: the session should pump.
    var wake: (() -> Void)?

    /// `specs`: each forward with its place in the tunnel's counts.
    init(_ specs: [(spec: RemoteForwardSpec, counterIndex: Int?)], exitOnFailure: Bool, eventLoop: EventLoop, logger: Logger) {
        self.entries = specs.map { Entry(spec: $0.spec, counterIndex: $0.counterIndex) }
        self.exitOnFailure = exitOnFailure
        self.eventLoop = eventLoop
        self.logger = logger
    }

    var isEmpty: Bool { entries.isEmpty }

    /// A forward waits to be asked for.
    var hasDue: Bool { entries.contains { if case .due = $0.state { return true } else { return false } } }

    /// With `ExitOnForwardFailure yes` the session counts as up only once the server agreed to every forward.
    var holdsReadiness: Bool { exitOnFailure && !entries.isEmpty }

    /// Every forward has been answered with a listener.
    var allListening: Bool {
        entries.allSatisfy { entry in
            switch entry.state {
            case .listening, .cancelling: return true
            default: return entry.removed
            }
        }
    }

    /// The forwards wanted (not those being removed).
    var status: [RemoteForwardStatus] {
        entries.compactMap { entry in
            let state: RemoteForwardStatus.State
            switch entry.state {
            case .cancelling: return nil
            case _ where entry.removed: return nil
            case .due, .asking: state = .pending
            case .listening(let listener): state = .listening(port: listener.boundPort)
            case .refused(let reason, _): state = .refused(reason: reason)
            }
            return RemoteForwardStatus(forward: entry.spec, state: state, counterIndex: entry.counterIndex)
        }
    }

    // MARK: - Added and removed while the session runs (reload)

    /// Ask for one more forward on this session (at its next pump, after any request in flight).
    func add(_ spec: RemoteForwardSpec, counterIndex: Int?, moved: Bool = false) {
        guard !ended else { return }
        entries.append(Entry(spec: spec, counterIndex: counterIndex, moved: moved))
        publish()
        wake?()
    }

    /// Stop a forward (matched by what it says, not where it was written): a listening one is cancelled
    /// (`cancel-tcpip-forward`; connections it already carries stay), one not yet asked for or refused just goes,
    /// one whose request is with the server is cancelled once answered.
    func remove(_ spec: RemoteForwardSpec) {
        guard let index = entries.firstIndex(where: { !$0.removed && Self.same($0.spec, spec) }) else { return }
        switch entries[index].state {
        case .due, .refused:
            entries.remove(at: index)
            scheduleRetry()
        case .asking:
            entries[index].removed = true
        case .listening(let listener):
            entries[index].state = .cancelling(listener)
            entries[index].removed = true
        case .cancelling:
            break
        }
        publish()
        wake?()
    }

    static func same(_ a: RemoteForwardSpec, _ b: RemoteForwardSpec) -> Bool {
        var a = a
        a.location = b.location
        return a == b
    }

    /// Send the cancels due; an entry whose cancel went out is gone. Throws what dooms the session.
    private func cancel() throws {
        var index = 0
        while index < entries.count {
            guard case .cancelling(let listener) = entries[index].state else { index += 1; continue }
            let spec = entries[index].spec
            do {
                guard case .done = try listener.cancel() else { index += 1; continue }
                logger.notice("RemoteForward \(spec.serverSideText(port: listener.boundPort)) -> \(spec.targetText): removed; the server stops listening")
            } catch {
                if error.isSessionFatal { throw error }
                logger.warning("RemoteForward \(spec.serverSideText(port: listener.boundPort)): could not cancel: \(error.detail)")
            }
            entries.remove(at: index)
        }
    }

    // MARK: - Driven by the session's pump

    /// Drive the request in flight, and start the next due one if `mayStart`. libssh2 has one `tcpip-forward`
    /// state per session, so requests go one at a time, in file order. Throws what dooms the session: a transport
    /// failure, or a refusal under `ExitOnForwardFailure yes`.
    ///
    /// The session lets the first request start only once the server answered its first channel open: sshd sends
    /// its after-login SSH_MSG_DEBUG lines ("authorized_keys:1: key options: ...") before it answers anything, so by
    /// then they are parsed and counted, and cannot pass for the reason of a refusal.
    func request(_ session: SSHSession, mayStart: Bool) throws {
        guard !ended else { return }
        try cancel()
        var changed = false
        defer { if changed { publish() } }
        while let index = nextToAsk() {
            if case .due = entries[index].state {
                guard mayStart else { return }
                entries[index].state = .asking(messagesBefore: session.serverMessageCount)
            }
            // Asking now: just set, or by an earlier pump.
            guard case .asking(let messagesBefore) = entries[index].state else { return }
            let spec = entries[index].spec
            let step: SSHStep<SSHRemoteListener>
            do {
                step = try session.requestRemoteListener(host: spec.requestHost, port: spec.listenPort)
            } catch {
                if error.isSessionFatal { throw error }
                changed = true
                // Removed while asked for, and refused: nothing to cancel, nothing to ask again.
                if entries[index].removed { entries.remove(at: index); continue }
                try refused(index, reason: refusalReason(error, session: session, messagesBefore: messagesBefore))
                continue
            }
            guard case .done(let listener) = step else { return }
            changed = true
            listening(index, listener)
            if entries[index].removed {
                // Removed while asked for: cancelled now that it exists.
                entries[index].state = .cancelling(listener)
                try cancel()
            }
        }
    }

    /// Hand every connection the server has forwarded to `take`, with the forward it came in on (its port the one
    /// the server listens on).
    func accept(_ take: (SSHChannel, RemoteForwardSpec, Int?) -> Void) throws(SSH2Error) {
        for entry in entries {
            guard case .listening(let listener) = entry.state else { continue }
            var bound = entry.spec
            bound.listenPort = listener.boundPort
            while let channel = try listener.accept() { take(channel, bound, entry.counterIndex) }
        }
    }

    /// The session ended: no listener of it is any use now (a new session asks again), no retry is due.
    func sessionEnded() {
        guard !ended else { return }
        ended = true
        retryTimer?.cancel()
        retryTimer = nil
        // Those being removed are not asked for again (the tunnel's list no longer has them either).
        entries.removeAll { entry in
            if case .cancelling = entry.state { return true }
            return entry.removed
        }
        for index in entries.indices { entries[index].state = .due }
        publish()
    }

    // MARK: - Steps

    private func nextToAsk() -> Int? {
        if let asking = entries.firstIndex(where: { if case .asking = $0.state { return true } else { return false } }) {
            return asking
        }
        return entries.firstIndex { if case .due = $0.state { return true } else { return false } }
    }

    private func listening(_ index: Int, _ listener: SSHRemoteListener) {
        let spec = entries[index].spec
        let refusals = entries[index].backoff.failures
        entries[index].state = .listening(listener)
        entries[index].backoff.reset()
        let chosen = spec.listenPort == 0 ? " (port \(listener.boundPort), chosen by the server)" : ""
        let after = refusals > 0 ? " after \(refusals) refusal\(refusals == 1 ? "" : "s")" : ""
        logger.notice("RemoteForward \(spec.serverSideText(port: listener.boundPort)) -> \(spec.targetText): the server listens\(chosen)\(after)")
    }

    private func refused(_ index: Int, reason: String) throws {
        let spec = entries[index].spec
        if exitOnFailure && !entries[index].moved {
            entries[index].state = .refused(reason: reason, retryAt: .distantFuture)
            throw TunnelError.remoteForwardRefused(forward: "RemoteForward \(spec.serverSideText(port: spec.listenPort)) -> \(spec.targetText)",
                                                   reason: reason)
        }
        let first = entries[index].backoff.failures == 0
        let delay = entries[index].backoff.nextDelay()
        let retryAt = NIODeadline.now() + .milliseconds(Int64(delay * 1000))
        entries[index].state = .refused(reason: reason, retryAt: retryAt)
        // The first refusal is news; the retries after it are not, until one succeeds (logged as up).
        let line = "RemoteForward \(spec.serverSideText(port: spec.listenPort)) -> \(spec.targetText): the server refused to listen: \(reason); asking again in \(Double(Int(delay * 10)) / 10) s (ExitOnForwardFailure no)"
        // Located like the config's own warnings (FILE:LINE), so the line to change is named.
        let location: Logger.Metadata = ["location": "\(spec.location)"]
        if first { logger.warning("\(line)", metadata: location) } else { logger.debug("\(line)", metadata: location) }
        scheduleRetry()
    }

    /// One timer, at the earliest retry; when it fires, every retry due by then becomes due.
    private func scheduleRetry() {
        retryTimer?.cancel()
        retryTimer = nil
        let retries = entries.compactMap { entry -> NIODeadline? in
            if case .refused(_, let at) = entry.state, at != .distantFuture { return at }
            return nil
        }
        guard let earliest = retries.min() else { return }
        retryTimer = eventLoop.scheduleTask(deadline: earliest) { [this = NIOLoopBound(self, eventLoop: eventLoop)] in
            this.value.retryDue()
        }
    }

    private func retryDue() {
        retryTimer = nil
        guard !ended else { return }
        let now = NIODeadline.now()
        for index in entries.indices {
            if case .refused(_, let at) = entries[index].state, at <= now { entries[index].state = .due }
        }
        scheduleRetry()
        wake?()
    }

    /// What the server said about the refused request: its SSH_MSG_DEBUG text if it sent one since the request
    /// (sshd does for "AllowTcpForwarding no/local"), else what a bare SSH_MSG_REQUEST_FAILURE can mean.
    private func refusalReason(_ error: SSH2Error, session: SSHSession, messagesBefore: Int) -> String {
        if session.serverMessageCount > messagesBefore, let words = session.lastServerMessage, !words.isEmpty {
            return "\"\(words)\""
        }
        if error.kind == .requestDenied {
            return "no reason given (the port may be in use on the server, or its AllowTcpForwarding, PermitListen or GatewayPorts forbid it)"
        }
        return error.detail
    }

    private func publish() {
        onChange?(status)
    }
}

extension RemoteForwardSpec {
    /// Whether the engine serves this forward: the server listens on a TCP port and connections go to a TCP target
    /// here, or (remote dynamic forwarding, no target) to where each connection's SOCKS request says. A socket on
    /// the server needs `forwarded-streamlocal@openssh.com` channels, which libssh2 cannot accept; socket targets
    /// are not served yet.
    public var isServedByEngine: Bool {
        guard listenSocketPath == nil else { return false }
        switch target {
        case .host, .socks: return true
        case .unixSocket: return false
        }
    }

    /// Remote dynamic forwarding: this side is the SOCKS server for the server's connections.
    var isRemoteDynamic: Bool { if case .socks = target { return true } else { return false } }

    /// The address sent in `tcpip-forward`, as OpenSSH's client sends it: "localhost" when none was written (the
    /// server's GatewayPorts decides), "" for `*` or an empty address (every address), else the address.
    var requestHost: String {
        switch bind {
        case .loopback: return "localhost"
        case .any: return ""
        case .address(let address): return address
        }
    }

    /// "localhost:9000", "*:9000", "[::1]:9000".
    func serverSideText(port: Int) -> String { "\(bind):\(port)" }

    /// "127.0.0.1:3000", "[fe80::1]:80".
    var targetText: String {
        switch target {
        case .host(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .socks: return "SOCKS proxy here (remote dynamic)"
        case .unixSocket(let path): return path
        }
    }

    /// The TCP target, for a forward the engine serves.
    var targetHostAndPort: (host: String, port: Int)? {
        if case .host(let host, let port) = target { return (host, port) }
        return nil
    }
}

/// Connects the local end of a remote-forwarded connection: a TCP connection from this machine to the forward's
/// target, made with NIO on the session's event loop (name lookup happens off the loop, in NIO's resolver), with
/// the same socket options as accepted clients. A target that refuses or cannot be reached closes this one channel.
enum RemoteTarget {
    static let connectTimeout = TimeAmount.seconds(10)

    static func connect(_ forward: ForwardedConnection, host: String, port: Int, connection: SSHConnection) {
        let eventLoop = connection.eventLoop
        let handler = NIOLoopBound(TargetSocketHandler(forward: forward, connection: connection), eventLoop: eventLoop)
        ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.autoRead, value: false)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 128 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .connect(host: host, port: port)
            .whenFailure { [forward = NIOLoopBound(forward, eventLoop: eventLoop), connection = NIOLoopBound(connection, eventLoop: eventLoop)] error in
                let forward = forward.value
                guard !forward.isClosed else { return }
                if forward.isAnsweringChannelHandshake {
                    // Remote dynamic: the SOCKS client on the server's side gets the failure before its channel closes.
                    forward.targetConnectFailed(error, target: ProxyTarget(host: host, port: port).description)
                    connection.value.clientEvent(forward)
                    return
                }
                forward.logger.warning("\(forward.label): cannot connect to \(host):\(port): \(plainReason(error)); closing this forwarded connection")
                forward.close(.abort)
                // Stepped once more, the closed connection hands its channel back to be closed and freed.
                connection.value.clientEvent(forward)
            }
    }
}

/// The handler on the local target socket of a remote-forwarded connection: the same events as an accepted
/// client's (`LocalClientHandler`), but both ends are known before the socket exists.
final class TargetSocketHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private var forward: ForwardedConnection?
    private var connection: SSHConnection?

    init(forward: ForwardedConnection, connection: SSHConnection) {
        self.forward = forward
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        guard let forward, let connection, !forward.isClosed else {
            // The session ended or the channel closed while we connected.
            self.forward = nil
            context.close(promise: nil)
            return
        }
        forward.attach(client: context.channel)
        // Bytes the server sent while we connected are waiting on the channel.
        connection.clientEvent(forward)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        forward?.clientRead(&buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let forward, let connection else { return }
        forward.clientReadComplete()
        connection.clientEvent(forward)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event, let forward, let connection {
            forward.clientSentEOF()
            connection.clientEvent(forward)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let forward, let connection { connection.clientEvent(forward) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let forward, let connection, forward.client != nil {
            forward.clientClosed()
            connection.clientEvent(forward)
        }
        forward = nil
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset from the target: close this one connection; the tunnel stays up.
        context.close(promise: nil)
    }
}
