import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TunnelConfig

/// What happens to a kept-up tunnel's session, for the front end to report (`HostTunnel.keepUp`).
public enum TunnelEvent: Sendable {
    /// A session is up: the first one, or a new one after an outage (`reconnected`).
    case connected(SessionInfo, reconnected: Bool)
    /// The session that was up ended; the next attempt starts in `retryIn` seconds.
    case sessionLost(TunnelError, retryIn: Double)
    /// An attempt to set a session up failed; the next starts in `retryIn` seconds. `report` says whether this
    /// failure is news (a new reason), a reminder (still failing, at the backoff's cap) or a repeat to keep quiet.
    case attemptFailed(TunnelError, retryIn: Double, report: OutageReport.Level)
    /// Authentication needs a person (a password, keyboard-interactive answers, a key's passphrase) and nobody
    /// can be asked: the tunnel does not retry, and stays in this state until it is restarted
    /// (`HostTunnel.needsAuthentication`).
    case needsAuthentication(TunnelError)
}

/// Everything one `Host` block brings up: its local listeners, its counters, and the SSH session they use (with
/// `TunnelSessions`, several: each a `Lane` on its own event loop, with its own state, backoff and waiting clients).
///
/// Listeners and counters belong here, not to the session, so a session can be replaced (reconnect) while the
/// listeners stay bound and the counters keep counting. While no session is up, an accepted client waits here,
/// unread (its bytes stay in the kernel's socket buffer: bounded), until a session is up or its wait
/// (`ConnectTimeout`) ends. The mutable state lives on `eventLoop`, in a box that checks it is only touched there;
/// what other threads read (bound addresses, the session's end) is locked.
public final class HostTunnel: Sendable {
    public let settings: ConnectionSettings
    /// The `LocalForward`s listened for now (a reload may add and remove some: `addForward`, `removeForwards`).
    public var localForwards: [ForwardSpec] { published.withLockedValue { $0.local.map(\.spec) } }
    /// `DynamicForward` proxy ports (SOCKS 4/4a/5 and HTTP on each), now.
    public var dynamicForwards: [DynamicForwardSpec] { published.withLockedValue { $0.dynamic.map(\.spec) } }
    /// Credentials the proxy ports require (`TunnelProxyAuth`); nil: none.
    public let proxyCredentials: ProxyCredentials?
    /// How long a proxy client has to say where it wants to go.
    public let proxyHandshakeTimeout: TimeAmount
    public let eventLoop: EventLoop
    public let counters: TunnelCounters
    private let logger: Logger

    /// A session that stayed up this long resets the backoff: the next outage starts again from the first delay.
    static let backoffResetAfter = TimeAmount.seconds(30)
    /// A client arriving during an outage brings the next attempt forward, but never to less than this after
    /// the previous attempt began (a stream of clients must not become a stream of connection attempts).
    static let clientNudgeSpacing = TimeAmount.milliseconds(250)

    /// How the session is looked after.
    private enum Mode {
        /// `start()`: one session; when it ends the tunnel is done (the owner decides what next).
        case oneShot
        /// `keepUp(onEvent:)`: a new session after every loss, with backoff; events go to the owner.
        case keepUp(@Sendable (TunnelEvent) -> Void)
    }

    /// A client accepted while no session was up (a local forward's, or a proxy client that has said where to go).
    private struct WaitingClient {
        /// "127.0.0.1:8080", for log lines.
        let listenText: String
        /// Its forward's place in the counts.
        let forwardIndex: Int
        /// Pairs it with a channel once a session is up.
        let serve: (SSHConnection) -> Void
        /// Tells its owner it was turned away (the owner closes it, after a proxy's answer).
        let turnAway: (String) -> Void
        let deadline: Scheduled<Void>
    }

    /// State confined to `eventLoop`.
    private final class LoopState {
        var mode = Mode.oneShot
        /// Each listener with its forward's index in `counters`, so one forward's can be closed alone.
        var listeners: [(forward: Int, channel: Channel)] = []
        /// Unix-domain socket files we created (with their forward's index), removed on stop.
        var socketFiles: [(forward: Int, path: String)] = []
        /// The session being set up or up; nil between attempts.
        var connection: SSHConnection?
        var stopped = false
        /// `closeListeners()` ran: a client whose accept was still under way then (its channel becomes active a
        /// few loop turns after the listener took it) is turned away too, not left waiting to hold up the drain.
        var listenersClosed = false
        var waiting: [ObjectIdentifier: WaitingClient] = [:]
        var backoff = Backoff()
        var report = OutageReport()
        var everConnected = false
        var upSince: NIODeadline?
        var lastAttemptAt = NIODeadline.distantPast
        /// The next attempt, while waiting between attempts.
        var retry: (task: Scheduled<Void>, at: NIODeadline)?
        /// Why the last attempt or session ended (its `waitsForCap` keeps clients from bringing the retry forward).
        var lastFailure: TunnelError?
        /// [ProxyJump] The jump-host sessions, kept between this tunnel's sessions (nil: a direct connection).
        var chain: HopChain?
    }
    /// One SSH session of the tunnel and the clients it serves, its state confined to its own event loop (all
    /// libssh2 calls of a session, and its clients' sockets, live there). One per `TunnelSessions`; the first also
    /// holds the listeners.
    private final class Lane: Sendable {
        /// 0-based; "session 2" in log lines is index 1.
        let index: Int
        let eventLoop: EventLoop
        let state: NIOLoopBoundBox<LoopState>
        let logger: Logger

        init(index: Int, eventLoop: EventLoop, state: sending LoopState, logger: Logger) {
            self.index = index
            self.eventLoop = eventLoop
            self.state = NIOLoopBoundBox.makeBoxSendingValue(state, eventLoop: eventLoop)
            self.logger = logger
        }
    }
    private let lanes: [Lane]
    /// With `TunnelSessions` > 1: the tunnel's own event loops, one per session. Listeners hand accepted clients to
    /// it round robin, so each client lives on its session's loop (NIO's `ServerBootstrap` takes no other kind of
    /// child group, so "the least busy session" cannot be chosen there). Nil with one session.
    private let sessionGroup: MultiThreadedEventLoopGroup?
    /// `stop()` has shut `sessionGroup` down (never set without one).
    private let sessionGroupShutDown = NIOLockedValueBox(false)
    /// The first session's state, which also holds the listeners (with one session: everything).
    private var state: NIOLoopBoundBox<LoopState> { lanes[0].state }
    private let published = NIOLockedValueBox(Published())
    private struct Published {
        var boundAddresses: [(forward: Int, address: String)] = []
        /// The listening forwards now, each with its index in `counters`. Local and dynamic forwards of the config
        /// get 0..<n in order (remote ones follow them); forwards added later get new indexes at the end, and a
        /// removed one's index is never reused, so a connection still open on it counts where it always did.
        var local: [(spec: ForwardSpec, index: Int)] = []
        var dynamic: [(spec: DynamicForwardSpec, index: Int)] = []
        /// The remote forwards each new session asks for, with their counter indexes.
        var remote: [(spec: RemoteForwardSpec, index: Int)] = []
        var sessionEnded: EventLoopFuture<TunnelError?>?
        var remoteForwards: [RemoteForwardStatus] = []
        /// For `status`: changed on the loop when the session's state changes (never on the data path).
        var state = TunnelStatus.State.connecting
        var lastError: String?
        /// Waiting for a person to authenticate (see `TunnelEvent.needsAuthentication`): why.
        var needsAuthentication: TunnelError?
        /// [ProxyJump] The chain's own record of its hops (locked there).
        var jumpHosts: HopChain.StatusBox?
        /// [TunnelSessions] Each session's state, whether it is up, and the forwarded connections it carries; the
        /// tunnel's `state` is the first session's that is up, else the last one published.
        var laneStates: [TunnelStatus.State] = []
        var laneUp: [Bool] = []
        var laneConnections: [Int] = []
        /// Sessions that have been up at least once (the rest of `sessionsEstablished` are reconnects).
        var lanesEverConnected = 0
        /// Sessions kept up: all of them with `keepUp`, one with `start()`.
        var sessionsWanted = 1
        /// The session that asks for the remote forwards (the server binds each port once): the first, until it is
        /// lost while another is up.
        var remoteLane = 0
    }

    /// With `settings.sessions` > 1 the tunnel makes an event loop group of its own, one loop per session (its
    /// `eventLoop` is then the first of those, not `eventLoop`), shut down by `stop()`.
    public init(settings: ConnectionSettings, localForwards: [ForwardSpec], dynamicForwards: [DynamicForwardSpec] = [],
                proxyCredentials: ProxyCredentials? = nil, proxyHandshakeTimeout: TimeAmount = .seconds(10),
                eventLoop: EventLoop, logger: Logger) {
        self.proxyHandshakeTimeout = proxyHandshakeTimeout
        self.settings = settings
        self.remoteForwardIndexOffset = localForwards.count + dynamicForwards.count
        self.proxyCredentials = proxyCredentials
        let sessions = max(1, settings.sessions)
        let loops: [EventLoop]
        if sessions > 1 {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: sessions)
            sessionGroup = group
            loops = Array(group.makeIterator())
        } else {
            sessionGroup = nil
            loops = [eventLoop]
        }
        self.eventLoop = loops[0]
        self.counters = TunnelCounters(forwardCount: localForwards.count + dynamicForwards.count + settings.remoteForwards.count)
        var logger = logger
        logger[metadataKey: "tunnel"] = "\(settings.name)"
        logger[metadataKey: "peer"] = "\(settings.hostName):\(settings.port)"
        self.logger = logger
        lanes = loops.enumerated().map { index, loop in
            let loopState = LoopState()
            loopState.backoff = Backoff(initial: settings.reconnectDelay, cap: settings.reconnectMaxDelay)
            var laneLogger = logger
            if sessions > 1 { laneLogger[metadataKey: "session"] = "\(index + 1)/\(sessions)" }
            return Lane(index: index, eventLoop: loop, state: loopState, logger: laneLogger)
        }
        published.withLockedValue {
            $0.laneStates = Array(repeating: .connecting, count: sessions)
            $0.laneUp = Array(repeating: false, count: sessions)
            $0.laneConnections = Array(repeating: 0, count: sessions)
            $0.sessionsWanted = sessions
            let offset = localForwards.count + dynamicForwards.count
            $0.remote = settings.remoteForwards.enumerated().map { ($1, offset + $0) }
            $0.remoteForwards = $0.remote.map { RemoteForwardStatus(forward: $0.spec, state: .pending, counterIndex: $0.index) }
            $0.local = localForwards.enumerated().map { ($1, $0) }
            $0.dynamic = dynamicForwards.enumerated().map { ($1, localForwards.count + $0) }
        }
    }

    public convenience init(host: HostConfig, eventLoop: EventLoop, logger: Logger) {
        self.init(settings: ConnectionSettings(host), localForwards: host.localForwards, dynamicForwards: host.dynamicForwards,
                  proxyCredentials: host.proxyAuth.map { ProxyCredentials(user: $0.user, password: $0.password) },
                  eventLoop: eventLoop, logger: logger)
    }

    /// The addresses actually bound, e.g. "127.0.0.1:8080" (port 0 in the config becomes the real port here).
    public var boundAddresses: [String] { published.withLockedValue { $0.boundAddresses.map(\.address) } }

    /// Each `RemoteForward` of the current session: pending, listening (on which port: the server's choice for
    /// `RemoteForward 0`) or refused (why).
    public var remoteForwardStatus: [RemoteForwardStatus] { published.withLockedValue { $0.remoteForwards } }

    /// Set while the tunnel waits in the "needs authentication" state (keepUp mode): the failure that put it
    /// there. Nothing is retried until the tunnel is stopped and started again.
    public var needsAuthentication: TunnelError? { published.withLockedValue { $0.needsAuthentication } }

    /// [ProxyJump] Each jump host's state, first hop first (empty for a direct connection).
    public var jumpHostStatus: [JumpHostStatus] { published.withLockedValue { $0.jumpHosts }?.withLockedValue { $0 } ?? [] }

    /// With `start()`: completes when the session ends, with the reason (nil after `stop()`).
    public var sessionEnded: EventLoopFuture<TunnelError?>? { published.withLockedValue { $0.sessionEnded } }

    /// What the tunnel is doing now and what each forward has carried, for `tunnel status`. Cheap: two short
    /// locked copies, nothing on the event loop.
    public var status: TunnelStatus {
        let (state, lastError, remote, local, dynamic, sessions) = published.withLockedValue {
            ($0.state, $0.lastError, $0.remoteForwards, $0.local, $0.dynamic,
             (up: $0.laneUp.filter { $0 }.count, wanted: $0.sessionsWanted, connections: $0.laneConnections, ever: $0.lanesEverConnected))
        }
        let totals = counters.snapshot
        func counts(_ index: Int) -> TunnelCounters.ForwardCounts {
            totals.forwards.indices.contains(index) ? totals.forwards[index] : .init()
        }
        var forwards: [TunnelStatus.Forward] = []
        for (spec, index) in local {
            forwards.append(.init(kind: .local, id: "L" + spec.listenText, listen: spec.listenText, target: spec.targetText, counts: counts(index)))
        }
        for (spec, index) in dynamic {
            forwards.append(.init(kind: .dynamic, id: "D" + spec.listenText, listen: spec.listenText, target: "SOCKS and HTTP proxy",
                                  counts: counts(index)))
        }
        for (offset, entry) in remote.enumerated() {
            var bound = entry.forward
            if case .listening(let port) = entry.state { bound.listenPort = port }
            forwards.append(.init(kind: .remote, id: "R" + entry.forward.serverSideText(port: entry.forward.listenPort),
                                  listen: "remote " + bound.serverSideText(port: bound.listenPort),
                                  target: bound.targetText, counts: counts(entry.counterIndex ?? remoteForwardIndexOffset + offset)))
        }
        // Each session's first start is not a reconnect (with one session: all but the first).
        return TunnelStatus(name: settings.name, state: state, reconnects: max(0, totals.sessionsEstablished - max(1, sessions.ever)),
                            lastError: lastError, forwards: forwards, totals: totals,
                            sessionsUp: sessions.up, sessionsWanted: sessions.wanted, sessionConnections: sessions.connections)
    }

    /// The config's local forwards' counts come first, then its dynamic ones', then remote ones'
    /// (`TunnelCounters.Snapshot.forwards`); forwards added while running follow.
    let remoteForwardIndexOffset: Int

    /// `lane`'s session is now in `state`; the tunnel is up while any session is (`stopped` is final).
    private func publish(_ state: TunnelStatus.State, lane: Lane, error: TunnelError? = nil) {
        published.withLockedValue { published in
            if case .stopped = published.state { return }
            published.laneStates[lane.index] = state
            if case .up = state {
                published.laneUp[lane.index] = true
            } else {
                published.laneUp[lane.index] = false
            }
            let firstUp = published.laneUp.firstIndex(of: true).map { published.laneStates[$0] }
            published.state = firstUp ?? state
            if let error { published.lastError = "\(error)" }
        }
    }

    // MARK: - Start and stop

    /// Bind every listener, then open one SSH session. Fails (and unbinds) if any listener cannot be bound or the
    /// session cannot be set up. When that session ends the tunnel does not reconnect (see `keepUp`).
    public func start() async throws -> SessionInfo {
        do {
            // The session object exists before the first listener does, so a client accepted at once waits for it
            // instead of finding no session and being turned away.
            // [TunnelSessions] One session here, whatever the setting: its clients stay on its loop.
            let lane = lanes[0]
            try await eventLoop.submit {
                let connection = self.makeConnection(on: lane)
                self.published.withLockedValue {
                    $0.sessionEnded = connection.closeFuture
                    $0.sessionsWanted = 1
                }
            }.get()
            try await bindAll()
            return try await eventLoop.flatSubmit { () -> EventLoopFuture<SessionInfo> in
                guard let connection = self.state.value.connection, !self.state.value.stopped else {
                    return self.eventLoop.makeFailedFuture(TunnelError.stopped)
                }
                return self.connect(connection, on: lane)
            }.get()
        } catch {
            await stop()
            throw error
        }
    }

    /// Bind every listener, then keep a session up until `stop()`: after any loss (EOF, reset, keepalive deadline,
    /// failed handshake or authentication, DNS) a new attempt follows, with capped exponential backoff and full
    /// jitter. Returns once the listeners are bound (throws, having unbound them, if one cannot be); what happens
    /// to the session is told through `onEvent`, on the tunnel's event loop.
    public func keepUp(onEvent: @escaping @Sendable (TunnelEvent) -> Void) async throws {
        do {
            for lane in lanes { try await lane.eventLoop.submit { lane.state.value.mode = .keepUp(onEvent) }.get() }
            try await bindAll()
            for lane in lanes { try await lane.eventLoop.submit { self.attempt(lane) }.get() }
        } catch {
            await stop()
            throw error
        }
    }

    /// Close listeners, waiting clients, forwarded connections and the session. Idempotent, and safe while a
    /// session is still being set up (`start()` then fails with `TunnelError.stopped`).
    public func stop() async {
        // [TunnelSessions] A second stop must not submit work to the group the first shut down: NIO drops such work
        // and its future never completes (`tunnel check` hung on a failing host, whose `start()` had stopped it).
        guard !sessionGroupShutDown.withLockedValue({ $0 }) else { return }
        // [TunnelSessions] The other sessions first, so none of them reports a loss after the tunnel said stopped.
        for lane in lanes.dropFirst() {
            try? await lane.eventLoop.flatSubmit { self.stopSession(lane) }.get()
        }
        // If the event loop is already gone there is nothing left to stop.
        try? await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            self.published.withLockedValue { $0.state = .stopped }
            var closing = state.listeners.map { $0.channel.close() }
            closing.append(self.stopSession(self.lanes[0]))
            state.listeners = []
            let files = state.socketFiles.map(\.path)
            state.socketFiles = []
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop).map {
                for path in files { unlink(path) }
            }
        }.get()
        // Nothing runs on the tunnel's own loops any more: a later stop returns at once.
        guard let sessionGroup, !sessionGroupShutDown.withLockedValue({ done in defer { done = true }; return done }) else { return }
        try? await sessionGroup.shutdownGracefully()
    }

    /// On `lane`'s loop: no more attempts; its waiting clients are turned away and its session closed.
    private func stopSession(_ lane: Lane) -> EventLoopFuture<Void> {
        let state = lane.state.value
        state.stopped = true
        state.retry?.task.cancel()
        state.retry = nil
        // Taken out first: turning a client away closes it, and its handler then asks to be taken out again.
        let waiting = state.waiting
        state.waiting = [:]
        for client in waiting.values {
            client.deadline.cancel()
            counters.connectionEnded(forward: client.forwardIndex)
            client.turnAway("the tunnel is stopping")
        }
        // [ProxyJump] The tunnel's session says goodbye through its jump hosts, then they close, last first.
        let session = state.connection?.close() ?? lane.eventLoop.makeSucceededVoidFuture()
        guard let chain = state.chain else { return session }
        let bound = NIOLoopBound(chain, eventLoop: lane.eventLoop)
        return session.flatMap { bound.value.close() }
    }

    /// Stop accepting: close the listeners (removing socket files we made) and turn away clients still waiting for a
    /// session; leave the session and the forwarded connections alone, so they can finish (graceful shutdown's first
    /// step; `stop()` closes the rest).
    public func closeListeners() async {
        try? await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            state.listenersClosed = true
            self.closeWaitingClients(self.lanes[0], reason: "the tunnel is stopping")
            let closing = state.listeners.map { $0.channel.close() }
            state.listeners = []
            let files = state.socketFiles.map(\.path)
            state.socketFiles = []
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop).map {
                for path in files { unlink(path) }
            }
        }.get()
        // [TunnelSessions] The other sessions, once the listeners no longer deal them clients.
        for lane in lanes.dropFirst() {
            try? await lane.eventLoop.submit {
                lane.state.value.listenersClosed = true
                self.closeWaitingClients(lane, reason: "the tunnel is stopping")
            }.get()
        }
    }

    /// One line per forward, "127.0.0.1:8080 -> 127.0.0.1:80", "127.0.0.1:1080 (SOCKS and HTTP proxy)", then
    /// "remote localhost:9000 -> 127.0.0.1:3000",
    /// with the server's port once it listens.
    public var forwardDescriptions: [String] {
        localForwards.map(\.forwardText) + dynamicForwards.map { "\($0.listenText) (SOCKS and HTTP proxy)" }
            + remoteForwardStatus.map(\.description)
    }

    // MARK: - Forwards added and removed while running (reload)

    /// Listen for one more `LocalForward` while the tunnel runs: its clients use the session that is up now (and
    /// every later one); the other forwards, their connections and the session are untouched. Throws (nothing
    /// left bound) if it cannot be bound.
    public func addForward(_ spec: ForwardSpec) async throws {
        let index = counters.addForward()
        try await bindAdded(.local(spec, index: index))
        published.withLockedValue { $0.local.append((spec, index)) }
    }

    /// Listen for one more `DynamicForward` (SOCKS and HTTP proxy) while the tunnel runs; as `addForward(_:)`.
    public func addForward(_ spec: DynamicForwardSpec) async throws {
        let index = counters.addForward()
        warnIfOpenProxy(spec)
        try await bindAdded(.proxy(spec, index: index))
        published.withLockedValue { $0.dynamic.append((spec, index)) }
    }

    /// Ask for one more `RemoteForward` while the tunnel runs: on the session that is up now (if any) and every
    /// later one. The server's answer comes as for the config's remote forwards (logged; `remoteForwardStatus`).
    public func addForward(_ spec: RemoteForwardSpec) async {
        let index = counters.addForward()
        let owner = remoteForwardsLane
        try? await owner.eventLoop.submit {
            self.published.withLockedValue { $0.remote.append((spec, index)) }
            if let connection = owner.state.value.connection {
                connection.addRemoteForward(spec, counterIndex: index)
            } else {
                self.published.withLockedValue { $0.remoteForwards.append(RemoteForwardStatus(forward: spec, state: .pending, counterIndex: index)) }
            }
        }.get()
    }

    /// Stop remote forwards a reload removed: the session up now cancels them (`cancel-tcpip-forward`: the server
    /// stops listening; connections it already forwarded stay), later sessions do not ask for them.
    public func removeForwards(remote: [RemoteForwardSpec]) async {
        guard !remote.isEmpty else { return }
        let owner = remoteForwardsLane
        try? await owner.eventLoop.submit {
            for spec in remote {
                self.published.withLockedValue { published in
                    if let at = published.remote.firstIndex(where: { RemoteForwards.same($0.spec, spec) }) { published.remote.remove(at: at) }
                }
                if let connection = owner.state.value.connection {
                    connection.removeRemoteForward(spec)
                } else {
                    self.published.withLockedValue { published in
                        if let at = published.remoteForwards.firstIndex(where: { RemoteForwards.same($0.forward, spec) }) {
                            published.remoteForwards.remove(at: at)
                        }
                    }
                }
            }
        }.get()
    }

    /// The session that asks for the remote forwards now.
    private var remoteForwardsLane: Lane { lanes[published.withLockedValue { $0.remoteLane }] }

    private func bindAdded(_ listener: Listener) async throws {
        do {
            try await bind(listener)
        } catch {
            // "localhost" binds two addresses: the one that did bind goes again.
            await closeForwards([listener.index], reason: "it could not be bound")
            throw error
        }
        // Stopped meanwhile (`down` while a reload added it): stop() has closed the others; close this one too.
        if (try? await eventLoop.submit({ self.state.value.stopped }).get()) != false {
            await closeForwards([listener.index], reason: "the tunnel is stopping")
            throw TunnelError.stopped
        }
    }

    /// Stop listening for forwards a reload removed (matched by what they say, not by where in the file they
    /// were written): their listeners close, their socket files go, and their clients still waiting for a
    /// session are turned away. Connections they already carry stay open until they end: a reload drops no open
    /// connection. Unknown forwards are ignored.
    public func removeForwards(local: [ForwardSpec], dynamic: [DynamicForwardSpec]) async {
        let indexes: Set<Int> = published.withLockedValue { published in
            var indexes = Set<Int>()
            for spec in local {
                guard let at = published.local.firstIndex(where: { Self.same($0.spec, spec) }) else { continue }
                indexes.insert(published.local.remove(at: at).index)
            }
            for spec in dynamic {
                guard let at = published.dynamic.firstIndex(where: { Self.same($0.spec, spec) }) else { continue }
                indexes.insert(published.dynamic.remove(at: at).index)
            }
            return indexes
        }
        await closeForwards(indexes, reason: "its forward was removed")
    }

    static func same(_ a: ForwardSpec, _ b: ForwardSpec) -> Bool {
        var a = a
        a.location = b.location
        return a == b
    }

    static func same(_ a: DynamicForwardSpec, _ b: DynamicForwardSpec) -> Bool {
        var a = a
        a.location = b.location
        return a == b
    }

    /// Close the listeners of the forwards with these counter indexes, and turn away their waiting clients.
    private func closeForwards(_ indexes: Set<Int>, reason: String) async {
        guard !indexes.isEmpty else { return }
        try? await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            self.closeWaitingClients(self.lanes[0], of: indexes, reason: reason)
            let closing = state.listeners.filter { indexes.contains($0.forward) }.map { $0.channel.close() }
            state.listeners.removeAll { indexes.contains($0.forward) }
            let files = state.socketFiles.filter { indexes.contains($0.forward) }.map(\.path)
            state.socketFiles.removeAll { indexes.contains($0.forward) }
            self.published.withLockedValue { $0.boundAddresses.removeAll { indexes.contains($0.forward) } }
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop).map {
                for path in files { unlink(path) }
            }
        }.get()
        // [TunnelSessions] The other sessions' waiting clients, once the listeners no longer deal them new ones.
        for lane in lanes.dropFirst() {
            try? await lane.eventLoop.submit { self.closeWaitingClients(lane, of: indexes, reason: reason) }.get()
        }
    }

    // MARK: - Sessions

    /// A new session object for `lane`, made current there, whose end is handled by `sessionEnded`.
    private func makeConnection(on lane: Lane) -> SSHConnection {
        let state = lane.state
        // [TunnelSessions] Remote forwards are asked for on one session only: the server binds a port once.
        let remote = published.withLockedValue { $0.remoteLane == lane.index ? $0.remote : [] }
        let connection = SSHConnection(settings: settings, eventLoop: lane.eventLoop, counters: counters,
                                       remoteForwardIndexOffset: remoteForwardIndexOffset,
                                       remoteForwards: remote.map { ($0.spec, $0.index) }, logger: lane.logger)
        state.value.connection = connection
        if !settings.jumpHosts.isEmpty {
            // [ProxyJump] Through the jump hosts: the chain keeps the hops that are still up. Each session has a
            // chain of its own; status shows the first one's.
            if state.value.chain == nil {
                let chain = HopChain(target: settings, eventLoop: lane.eventLoop, logger: lane.logger)
                state.value.chain = chain
                if lane.index == 0 { published.withLockedValue { $0.jumpHosts = chain.statusBox } }
            }
            let chain = NIOLoopBound(state.value.chain!, eventLoop: lane.eventLoop)
            connection.linkOpener = { events in chain.value.link(events: events) }
        }
        // [remote forwards] Status for `remoteForwardStatus`, from whichever session is current and asks for them.
        let index = lane.index
        connection.remoteForwards.onChange = { [published] status in
            published.withLockedValue { if $0.remoteLane == index { $0.remoteForwards = status } }
        }
        if lanes.count > 1 {
            connection.onForwardCountChange = { [published] count in published.withLockedValue { $0.laneConnections[index] = count } }
        }
        let bound = NIOLoopBound(connection, eventLoop: lane.eventLoop)
        connection.closeFuture.whenSuccess { [self] reason in self.sessionEnded(bound.value, on: lane, reason: reason) }
        return connection
    }

    /// Start one attempt at `lane`'s session (keepUp mode).
    private func attempt(_ lane: Lane) {
        let state = lane.state.value
        guard !state.stopped else { return }
        state.retry = nil
        state.lastAttemptAt = .now()
        connect(makeConnection(on: lane), on: lane)
    }

    /// Set `connection` up; once it is, hand it the clients that waited.
    @discardableResult
    private func connect(_ connection: SSHConnection, on lane: Lane) -> EventLoopFuture<SessionInfo> {
        let bound = NIOLoopBound(connection, eventLoop: lane.eventLoop)
        let ready = connection.connect()
        ready.whenSuccess { [self] info in self.sessionUp(bound.value, on: lane, info: info) }
        return ready
    }

    private func sessionUp(_ connection: SSHConnection, on lane: Lane, info: SessionInfo) {
        let state = lane.state.value
        guard state.connection === connection, !state.stopped else { return }
        state.upSince = .now()
        state.report.recovered()
        state.lastFailure = nil
        let reconnected = state.everConnected
        if !state.everConnected { published.withLockedValue { $0.lanesEverConnected += 1 } }
        state.everConnected = true
        publish(.up(.init(since: Date(), server: "\(settings.hostName):\(settings.port)", hostKeyType: info.hostKeyType,
                          hostKeyFingerprint: info.hostKeyFingerprint, algorithms: info.algorithms)), lane: lane)
        if case .keepUp(let onEvent) = state.mode { onEvent(.connected(info, reconnected: reconnected)) }
        // Clients that waited through the outage go first, oldest first is not promised (they arrived together).
        let waiting = state.waiting
        state.waiting = [:]
        for client in waiting.values {
            client.deadline.cancel()
            client.serve(connection)
        }
    }

    private func sessionEnded(_ connection: SSHConnection, on lane: Lane, reason: TunnelError?) {
        let state = lane.state.value
        guard state.connection === connection else { return }
        state.connection = nil
        // [ProxyJump] A session that a lost jump host took down is reported as that hop's failure.
        let reason = reason.map { state.chain?.blame($0) ?? $0 }
        guard !state.stopped, let reason, case .keepUp(let onEvent) = state.mode else {
            if !state.stopped, let reason { publish(.failed(reason: "\(reason)", nextRetry: nil), lane: lane, error: reason) }
            // One-shot: the owner learns the end from `sessionEnded`; clients waiting for this session go.
            closeWaitingClients(lane, reason: reason.map { "the SSH session could not be set up: \($0)" } ?? "the tunnel stopped")
            return
        }
        published.withLockedValue { $0.laneUp[lane.index] = false }
        moveRemoteForwards(from: lane)
        let now = NIODeadline.now()
        let wasUp = state.upSince != nil
        if let upSince = state.upSince, now - upSince >= Self.backoffResetAfter { state.backoff.reset() }
        state.upSince = nil
        let othersUp = published.withLockedValue { $0.laneUp.filter { $0 }.count }
        if reason.needsPerson, othersUp > 0 {
            // [TunnelSessions] This session cannot log in again without a person, but the host is up on others:
            // a warning, not the host's state (which `status` and the metrics would then contradict). The session's
            // own state says so; the host's stays that of a session that is up.
            state.lastFailure = reason
            publish(.needsAuthentication(reason: "\(reason)"), lane: lane, error: reason)
            lane.logger.warning("SSH session \(lane.index + 1) of \(lanes.count) needs authentication that nobody can give here: \(reason); not retried until restarted (\(othersUp) of \(lanes.count) up)")
            closeWaitingClients(lane, reason: "the SSH session needs authentication that nobody can give here")
            _ = state.chain?.close()
            return
        }
        if reason.needsPerson {
            // Retrying cannot help: nobody can answer. Wait, visibly, until restarted.
            state.lastFailure = reason
            published.withLockedValue { $0.needsAuthentication = reason }
            publish(.needsAuthentication(reason: "\(reason)"), lane: lane, error: reason)
            lane.logger.debug("needs authentication: not retrying until restarted")
            onEvent(.needsAuthentication(reason))
            closeWaitingClients(lane, reason: "the SSH session needs authentication that nobody can give here")
            // [ProxyJump] Nothing will use the jump hosts' sessions before a restart.
            _ = state.chain?.close()
            return
        }
        let waitsForCap = reason.waitsForCap
        let delay = waitsForCap ? state.backoff.delayAtCap() : state.backoff.nextDelay()
        state.lastFailure = reason
        let retryAt = Date(timeIntervalSinceNow: delay)
        publish(waitsForCap ? .failed(reason: "\(reason)", nextRetry: retryAt) : .reconnecting(reason: "\(reason)", nextRetry: retryAt),
                lane: lane, error: reason)
        if othersUp > 0 {
            // [TunnelSessions] The host is still up on its other sessions: this one's loss is a log line, not an
            // outage (the owner's events, and the metrics they feed, say the host is up).
            let level = state.report.failed(reason: "\(reason)", atCap: !wasUp && (waitsForCap || state.backoff.atCap))
            let line: Logger.Message = "SSH session \(lane.index + 1) of \(lanes.count) \(wasUp ? "was lost" : "could not be set up"): \(reason); next attempt in \(String(format: "%.1f", delay)) s (\(othersUp) of \(lanes.count) up)"
            if level == .repeated { lane.logger.debug(line) } else { lane.logger.warning(line) }
        } else if wasUp {
            // The report was reset when the session came up; the loss is remembered so the same reason next is quiet.
            _ = state.report.failed(reason: "\(reason)", atCap: false)
            onEvent(.sessionLost(reason, retryIn: delay))
        } else {
            let level = state.report.failed(reason: "\(reason)", atCap: waitsForCap || state.backoff.atCap)
            onEvent(.attemptFailed(reason, retryIn: delay, report: level))
        }
        scheduleAttempt(lane, at: now + .nanoseconds(Int64(delay * 1e9)))
    }

    /// [TunnelSessions] `lane` was lost: if it asked for the remote forwards and another session is up, that one
    /// asks for them now (the server freed the ports with the lost session, or frees them when it notices: a
    /// refusal meanwhile is retried as usual).
    private func moveRemoteForwards(from lane: Lane) {
        guard lanes.count > 1 else { return }
        let moved: (lane: Lane, remote: [(spec: RemoteForwardSpec, index: Int)])? = published.withLockedValue { published in
            guard published.remoteLane == lane.index, !published.remote.isEmpty,
                  let up = published.laneUp.firstIndex(of: true) else { return nil }
            published.remoteLane = up
            return (lanes[up], published.remote)
        }
        guard let moved else { return }
        lane.logger.notice("SSH session \(lane.index + 1) of \(lanes.count) asked for the remote forwards and was lost: session \(moved.lane.index + 1) asks for them now")
        moved.lane.eventLoop.execute {
            // Lost meanwhile: its next session asks for them (it is the one that asks now).
            guard let connection = moved.lane.state.value.connection else { return }
            // The server may still hold the ports for the lost session: a refusal is retried, never a reason to end
            // this healthy session (as `ExitOnForwardFailure` would).
            for (spec, index) in moved.remote { connection.addRemoteForward(spec, counterIndex: index, moved: true) }
        }
    }

    private func scheduleAttempt(_ lane: Lane, at deadline: NIODeadline) {
        let state = lane.state.value
        state.retry?.task.cancel()
        let task = lane.eventLoop.scheduleTask(deadline: deadline) { [self] in self.attempt(lane) }
        state.retry = (task, deadline)
    }

    /// A client is waiting on `lane`: bring its next attempt forward, unless the failure is one that waiting cures.
    private func nudgeAttempt(_ lane: Lane) {
        let state = lane.state.value
        guard let retry = state.retry, state.lastFailure?.waitsForCap != true else { return }
        let earliest = max(NIODeadline.now(), state.lastAttemptAt + Self.clientNudgeSpacing)
        if retry.at > earliest + .milliseconds(50) { scheduleAttempt(lane, at: earliest) }
    }

    // MARK: - Clients

    // MARK: - Listeners

    private func bindAll() async throws {
        let (local, dynamic) = published.withLockedValue { ($0.local, $0.dynamic) }
        for (spec, index) in local {
            try await bind(.local(spec, index: index))
        }
        for (spec, index) in dynamic {
            warnIfOpenProxy(spec)
            try await bind(.proxy(spec, index: index))
        }
    }

    /// A port or socket to listen on, and what serves its clients.
    private enum Listener {
        /// `LocalForward`: each client goes to the one target.
        /// `index`: the forward's place in the tunnel's counts (`TunnelCounters.Snapshot.forwards`).
        case local(ForwardSpec, index: Int)
        /// `DynamicForward`: each client says where it goes (SOCKS or HTTP proxy).
        case proxy(DynamicForwardSpec, index: Int)

        var socketPath: String? {
            switch self {
            case .local(let spec, _): if case .unixSocket(let path) = spec.listener { return path } else { return nil }
            case .proxy(let spec, _): return spec.listenSocketPath
            }
        }
        var bind: BindAddress {
            switch self {
            case .local(let spec, _): return spec.bind
            case .proxy(let spec, _): return spec.bind
            }
        }
        var listenPort: Int {
            switch self {
            case .local(let spec, _): return spec.listenPort
            case .proxy(let spec, _): return spec.listenPort
            }
        }
        var listenText: String {
            switch self {
            case .local(let spec, _): return spec.listenText
            case .proxy(let spec, _): return spec.listenText
            }
        }
        var index: Int {
            switch self {
            case .local(_, let index), .proxy(_, let index): return index
            }
        }
    }

    private func bind(_ spec: Listener) async throws {
        if let path = spec.socketPath { return try await bindSocket(spec, path: path) }
        let addresses = bindAddresses(for: spec.bind)
        var boundOne = false
        for (index, host) in addresses.enumerated() {
            let required = index == 0
            do {
                let channel = try await makeServerBootstrap(spec: spec, tcp: true, v6Only: host.contains(":"))
                    .bind(host: host, port: spec.listenPort).get()
                let local = channel.localAddress.map(describe) ?? "\(host):\(spec.listenPort)"
                try await eventLoop.submit {
                    self.state.value.listeners.append((spec.index, channel))
                    self.published.withLockedValue { $0.boundAddresses.append((spec.index, local)) }
                }.get()
                boundOne = true
            } catch {
                // localhost means 127.0.0.1 and ::1, as in OpenSSH; a machine without IPv6 still gets 127.0.0.1.
                if required || !boundOne {
                    throw TunnelError.bindFailed(address: "\(spec.listenText)", reason: bindReason(error, port: spec.listenPort))
                }
            }
        }
    }

    /// A Unix-domain socket listener (`LocalForward /path/app.sock host:port`), with OpenSSH's rules: an existing
    /// file is an error unless `StreamLocalBindUnlink yes`, and the socket's permissions are 0666 less
    /// `StreamLocalBindMask` (default 0177: only the owner may connect). The file is removed again on stop.
    private func bindSocket(_ spec: Listener, path: String) async throws {
        let channel: Channel
        do {
            channel = try await makeServerBootstrap(spec: spec, tcp: false)
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: settings.streamLocalBindUnlink).get()
        } catch {
            let reason: String
            if let io = error as? IOError, io.errnoCode == EADDRINUSE {
                reason = "\(path) already exists (remove it, or set StreamLocalBindUnlink yes)"
            } else if error is UnixDomainSocketPathWrongType {
                // NIO replaces only a socket file: anything else at the path is left alone, whatever the setting.
                reason = "\(path) exists and is not a socket; not replacing it"
            } else {
                reason = plainReason(error)
            }
            throw TunnelError.bindFailed(address: path, reason: reason)
        }
        // NIO binds with the process umask; narrow the mode at once, before the first client can matter (with
        // the usual umask 022 nobody but the owner can connect in between: connecting needs write permission).
        guard chmod(path, mode_t(0o666 & ~settings.streamLocalBindMask & 0o777)) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(path)
            throw TunnelError.bindFailed(address: path, reason: "cannot set the socket's permissions: \(reason)")
        }
        try await eventLoop.submit {
            self.state.value.listeners.append((spec.index, channel))
            self.state.value.socketFiles.append((spec.index, path))
            self.published.withLockedValue { $0.boundAddresses.append((spec.index, path)) }
        }.get()
    }

    private func bindAddresses(for bind: BindAddress) -> [String] {
        switch bind {
        case .loopback: return ["127.0.0.1", "::1"]
        case .any: return ["0.0.0.0", "::"]
        case .address(let address): return [address]
        }
    }

    private func makeServerBootstrap(spec: Listener, tcp: Bool, v6Only: Bool = false) -> ServerBootstrap {
        // [TunnelSessions] Accepted clients go round robin to the sessions' loops while all are kept up (`keepUp`).
        let sessionsWanted = published.withLockedValue { $0.sessionsWanted }
        var childGroup: EventLoopGroup = eventLoop
        if sessionsWanted > 1, let sessionGroup { childGroup = sessionGroup }
        var bootstrap = ServerBootstrap(group: eventLoop, childGroup: childGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelInitializer { [logger] channel in
                // Out of descriptors: pause accepting and log, rather than retry accept in a busy loop.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptFailureHandler(listenText: spec.listenText, logger: logger))
                }
            }
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 128 * 1024))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    switch spec {
                    case .local(let local, let index):
                        try channel.pipeline.syncOperations.addHandler(LocalClientHandler(tunnel: self, spec: local, forwardIndex: index))
                    case .proxy(let proxy, let index):
                        try channel.pipeline.syncOperations.addHandler(
                            ProxyClientHandler(tunnel: self, listenText: proxy.listenText, forwardIndex: index, credentials: proxyCredentials,
                                               handshakeTimeout: proxyHandshakeTimeout, logger: logger))
                    }
                }
            }
        if tcp {
            // Not for Unix-domain sockets: setting a TCP option there fails, and NIO then closes the client.
            bootstrap = bootstrap.serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        }
        if v6Only {
            // So "::" does not also claim the IPv4 port that "0.0.0.0" holds.
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
        }
        return bootstrap
    }

    /// A local client connected: pair it with a channel to the forward's target now if the session is up, or hold
    /// it until one is (bounded by the connect timeout).
    fileprivate func accepted(_ client: Channel, spec: ForwardSpec, forwardIndex: Int, handler: LocalClientHandler) {
        let target: ChannelTarget
        switch spec.target {
        case .tcp(let host, let port): target = .tcp(host: host, port: port)
        case .unixSocket(let path): target = .unixSocket(path: path)
        }
        openForward(client: client, handler: handler, label: spec.forwardText, listenText: spec.listenText,
                    forwardIndex: forwardIndex, target: target) { result in
            switch result {
            case .success:
                break  // the session steps it from here: it starts reading the client
            case .failure(let failure):
                // Turned away before a forwarded connection was made: openForward said why in the log.
                guard let forward = handler.forward else { return client.close(promise: nil) }
                forward.logger.warning("\(forward.label): the server could not open the connection: \(failure.message)")
                forward.close(.abort)
            }
        }
    }

    /// The one way a client that connected here becomes a forwarded connection (a local forward's client, or a proxy
    /// client once it has said where to go). With a session up: make the `ForwardedConnection`, attach the client
    /// and its handler, and ask the session for a channel to `target`. Without one: the client waits here for a
    /// session (bounded by the connect timeout), or is turned away at once when none is coming (`start()`'s session
    /// ended, or the tunnel is stopping).
    ///
    /// `completion` runs on the loop: with the open's result (a refused open is for the caller to log), with a
    /// failure when the client is turned away or its wait ends (logged here, with `listenText`), and not at all if
    /// the connection was closed meanwhile. A handler whose client closes while it waits (it has no forwarded
    /// connection yet) calls `waitingClientClosed`.
    func openForward(client: Channel, handler: ForwardClientHandler, label: String, listenText: String, forwardIndex: Int,
                     target: ChannelTarget, completion: @escaping (Result<ForwardedConnection, ChannelOpenFailure>) -> Void) {
        counters.connectionAccepted(forward: forwardIndex)
        let lane = self.lane(for: client.eventLoop)
        let state = lane.state.value
        let logger = lane.logger
        let serve = { [self] (connection: SSHConnection) in
            self.serve(client, handler: handler, label: label, forwardIndex: forwardIndex, target: target, on: connection, completion: completion)
        }
        guard !state.stopped, !state.listenersClosed || (state.connection?.isReady ?? false) else {
            counters.connectionEnded(forward: forwardIndex)
            return completion(.failure(ChannelOpenFailure(message: "the tunnel is stopping")))
        }
        if let connection = state.connection, connection.isReady { return serve(connection) }
        if published.withLockedValue({ $0.needsAuthentication != nil }) {
            counters.connectionEnded(forward: forwardIndex)
            logger.warning("\(listenText): refused a client: the SSH session needs authentication (restart the tunnel where someone can answer)")
            return completion(.failure(ChannelOpenFailure(message: "the SSH session needs authentication")))
        }
        if case .oneShot = state.mode, state.connection == nil {
            counters.connectionEnded(forward: forwardIndex)
            logger.warning("\(listenText): refused a client: the SSH session is not up")
            return completion(.failure(ChannelOpenFailure(message: "the SSH session is not up")))
        }
        let wait = TimeAmount.seconds(settings.connectTimeoutSeconds)
        let key = ObjectIdentifier(client)
        let deadline = lane.eventLoop.scheduleTask(in: wait) { [self] in
            guard lane.state.value.waiting.removeValue(forKey: key) != nil else { return }
            let why = lane.state.value.lastFailure.map { " (last failure: \($0))" } ?? ""
            logger.warning("\(listenText): closed a client that waited \(self.settings.connectTimeoutSeconds) s for the SSH session\(why)")
            self.counters.connectionEnded(forward: forwardIndex)
            completion(.failure(ChannelOpenFailure(message: "the SSH session is not up (waited \(self.settings.connectTimeoutSeconds) s)\(why)")))
        }
        let turnAway = { (reason: String) in completion(.failure(ChannelOpenFailure(message: "the SSH session is not up: \(reason)"))) }
        state.waiting[key] = WaitingClient(listenText: listenText, forwardIndex: forwardIndex, serve: serve, turnAway: turnAway, deadline: deadline)
        logger.debug("\(listenText): a client waits for the SSH session")
        nudgeAttempt(lane)
    }

    /// The session whose loop a client lives on (the listeners deal clients out over the sessions' loops).
    private func lane(for loop: EventLoop) -> Lane {
        guard lanes.count > 1 else { return lanes[0] }
        return lanes.first { $0.eventLoop.inEventLoop } ?? lanes[0]
    }

    /// A waiting client left before a session came.
    func waitingClientClosed(_ client: Channel) {
        let lane = self.lane(for: client.eventLoop)
        guard let waiting = lane.state.value.waiting.removeValue(forKey: ObjectIdentifier(client)) else { return }
        waiting.deadline.cancel()
        counters.connectionEnded(forward: waiting.forwardIndex)
    }

    /// On `lane`'s loop: turn away its waiting clients (only those of the forwards `indexes`, if given).
    private func closeWaitingClients(_ lane: Lane, of indexes: Set<Int>? = nil, reason: String) {
        let state = lane.state.value
        for (key, client) in state.waiting where indexes?.contains(client.forwardIndex) ?? true {
            // Taken out first: turning a client away closes it, and its handler then asks to be taken out again.
            state.waiting[key] = nil
            client.deadline.cancel()
            lane.logger.warning("\(client.listenText): closed a waiting client: \(reason)")
            counters.connectionEnded(forward: client.forwardIndex)
            client.turnAway(reason)
        }
    }

    /// Pair `client` with a new channel to `target` on `connection`.
    private func serve(_ client: Channel, handler: ForwardClientHandler, label: String, forwardIndex: Int, target: ChannelTarget,
                       on connection: SSHConnection, completion: @escaping (Result<ForwardedConnection, ChannelOpenFailure>) -> Void) {
        let forward = connection.makeForward(label: label, forwardIndex: forwardIndex)
        forward.attach(client: client)
        handler.attach(forward, connection)
        connection.open(forward, to: target) { [counters] result in
            switch result {
            case .success:
                completion(.success(forward))
            case .failure(let failure):
                // A connection already closed (the session ended, tunnel stopping) is not the server's refusal.
                guard !forward.isClosed else { return }
                counters.recordOpenFailure(forward: forwardIndex)
                completion(.failure(failure))
            }
        }
    }

    /// A proxy anyone on the network can use to reach whatever the SSH server reaches deserves a line at start.
    private func warnIfOpenProxy(_ spec: DynamicForwardSpec) {
        guard Self.isOpenProxy(spec, credentials: proxyCredentials) else { return }
        logger.warning("DynamicForward \(spec.listenText) accepts clients from other machines without a password: anyone who can reach it can connect through the SSH server (bind it to 127.0.0.1, or set TunnelProxyAuth)")
    }

    /// A proxy port other machines can reach, with no password asked.
    static func isOpenProxy(_ spec: DynamicForwardSpec, credentials: ProxyCredentials?) -> Bool {
        guard credentials == nil, !spec.isUnixSocket else { return false }
        switch spec.bind {
        case .loopback: return false
        case .address(let address): return !(address.hasPrefix("127.") || address == "::1" || address == "localhost")
        case .any: return true
        }
    }
}

/// A client socket's handler that feeds a `ForwardedConnection` once it has one.
protocol ForwardClientHandler: AnyObject {
    func attach(_ forward: ForwardedConnection, _ connection: SSHConnection)
}

/// The handler on an accepted client socket: announces the client to its tunnel, then relays like any paired
/// client socket (`ForwardClientRelay`); a client that closes while it still waits for a session leaves the wait.
final class LocalClientHandler: ForwardClientRelay {
    private let tunnel: HostTunnel
    private let spec: ForwardSpec
    private let forwardIndex: Int

    init(tunnel: HostTunnel, spec: ForwardSpec, forwardIndex: Int) {
        self.tunnel = tunnel
        self.spec = spec
        self.forwardIndex = forwardIndex
    }

    override func channelActive(context: ChannelHandlerContext) {
        tunnel.accepted(context.channel, spec: spec, forwardIndex: forwardIndex, handler: self)
        context.fireChannelActive()
    }

    override func closedBeforePairing(context: ChannelHandlerContext) {
        tunnel.waitingClientClosed(context.channel)
    }
}

extension DynamicForwardSpec {
    /// "127.0.0.1:1080", "*:1080", "/run/proxy.sock".
    var listenText: String {
        if let listenSocketPath { return listenSocketPath }
        return ForwardSpec(bind: bind, listenPort: listenPort, targetHost: "", targetPort: 0, location: location).listenText
    }
}

extension ForwardSpec {
    /// "127.0.0.1:8080", "[::1]:8080", "*:8080", "/run/app.sock".
    var listenText: String {
        if case .unixSocket(let path) = listener { return path }
        switch bind {
        case .loopback: return "127.0.0.1:\(listenPort)"
        case .any: return "*:\(listenPort)"
        case .address(let address): return address.contains(":") ? "[\(address)]:\(listenPort)" : "\(address):\(listenPort)"
        }
    }

    /// "127.0.0.1:8080 -> db.internal:5432", for log lines and the "connected" line.
    var forwardText: String { "\(listenText) -> \(targetText)" }

    /// "db.internal:5432", "[fe80::1]:80", "/var/run/docker.sock".
    var targetText: String {
        if case .unixSocket(let path) = target { return path }
        return targetHost.contains(":") ? "[\(targetHost)]:\(targetPort)" : "\(targetHost):\(targetPort)"
    }
}

private func bindReason(_ error: Error, port: Int) -> String {
    if let io = error as? IOError, io.errnoCode == EADDRINUSE {
        if let owner = PortOwner.listener(onPort: port) {
            return "port \(port) is already in use by \(owner.command) (pid \(owner.pid))"
        }
        return "port \(port) is already in use by another program (see: ss -ltnp 'sport = :\(port)')"
    }
    if let io = error as? IOError, io.errnoCode == EACCES {
        return "permission denied (ports below 1024 need root)"
    }
    return plainReason(error)
}
