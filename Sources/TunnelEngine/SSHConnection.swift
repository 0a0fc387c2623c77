import Logging
import NIOCore
import NIOPosix
import SSH2
import TunnelConfig

/// What a successful connect reports.
public struct SessionInfo: Sendable {
    public var hostKeyType: String
    public var hostKeyFingerprint: String
    /// How the host key was accepted ("known_hosts:3", "recorded in ~/.ssh/known_hosts", "not checked").
    public var hostKeyStatus: String
    /// The identity file that logged in, or the method's name when no key did (`password`,
    /// `keyboard-interactive`, `none`).
    public var identityFile: String
    /// The algorithms the handshake settled on.
    public var algorithms = NegotiatedAlgorithms()
}

/// What the SSH handshake negotiated: key exchange, host-key algorithm, and per direction the cipher, MAC and
/// compression (OpenSSH's names, e.g. "curve25519-sha256", "aes256-ctr", "hmac-sha2-256", "none").
public struct NegotiatedAlgorithms: Sendable, Equatable, Codable {
    public var keyExchange = ""
    public var hostKey = ""
    public var cipherClientToServer = ""
    public var cipherServerToClient = ""
    public var macClientToServer = ""
    public var macServerToClient = ""
    public var compressionClientToServer = ""
    public var compressionServerToClient = ""

    public init() {}

    /// "kex curve25519-sha256, host key ssh-ed25519, cipher aes128-ctr each way, MAC hmac-sha2-256 each way"
    /// (directions named when they differ; an AEAD cipher's MAC as "implicit": the cipher authenticates).
    public var summary: String {
        func mac(_ name: String, cipher: String) -> String {
            name.isEmpty || Self.isAEAD(cipher) ? "implicit" : name
        }
        return "kex \(keyExchange), host key \(hostKey), cipher "
            + Self.eachWay(cipherClientToServer, cipherServerToClient) + ", MAC "
            + Self.eachWay(mac(macClientToServer, cipher: cipherClientToServer), mac(macServerToClient, cipher: cipherServerToClient))
    }

    /// Whether a cipher authenticates what it encrypts (AES-GCM, chacha20-poly1305), so no separate MAC is used.
    public static func isAEAD(_ cipher: String) -> Bool {
        cipher.hasSuffix("-gcm@openssh.com") || cipher == "chacha20-poly1305@openssh.com"
    }

    /// "X each way" when both directions agree, else "X client->server, Y server->client".
    public static func eachWay(_ clientToServer: String, _ serverToClient: String) -> String {
        clientToServer == serverToClient
            ? "\(clientToServer) each way"
            : "\(clientToServer) client->server, \(serverToClient) server->client"
    }

    init(_ methods: SSHNegotiatedMethods) {
        keyExchange = methods.keyExchange
        hostKey = methods.hostKey
        cipherClientToServer = methods.cipherClientToServer
        cipherServerToClient = methods.cipherServerToClient
        macClientToServer = methods.macClientToServer
        macServerToClient = methods.macServerToClient
        compressionClientToServer = methods.compressionClientToServer
        compressionServerToClient = methods.compressionServerToClient
    }
}

/// Where a channel should lead, as the server is asked to open it.
enum ChannelTarget {
    /// `direct-tcpip`: the server connects to `host:port` (ssh -L, and the proxy's targets).
    case tcp(host: String, port: Int)
    /// `direct-streamlocal@openssh.com`: the server connects to a Unix-domain socket (ssh -L PORT:/path).
    case unixSocket(path: String)
}

/// Why the server did not open a channel (only that one connection is affected).
struct ChannelOpenFailure: Error {
    var message: String
}

/// One SSH session to one server, pinned to one NIO event loop.
///
/// libssh2 reads and writes through `SessionTransport`; a `SessionLink` (TCP today) carries the bytes. Work follows
/// activity (design section 4a): an event on one client socket steps that one forwarded connection; bytes from the
/// server are parsed once per burst, after which only the channels with data (or at end of stream) are stepped; a
/// connection waiting for the server's window or for the session's output is stepped again only when that changes.
/// Key-file and known_hosts work runs on the thread pool, never on the loop.
///
/// Every libssh2 call for this session and its channels happens on `eventLoop` (or, during authentication, on a
/// pool thread while the loop leaves the session alone), so nothing needs a lock. A connection is used once: when
/// it ends (`closeFuture`), its owner makes a new one; listeners and counters live in the owner (`HostTunnel`).
final class SSHConnection: SessionLinkEvents {
    let settings: ConnectionSettings
    let eventLoop: EventLoop
    private var logger: Logger
    private let counters: TunnelCounters
    private let remoteForwardIndexOffset: Int

    private enum State {
        case idle
        /// Reading known_hosts on the pool, then connecting the link.
        case connecting
        case handshaking
        /// The host key is being checked on the pool.
        case verifyingHostKey
        /// `inFlight`: an authentication step is running on the pool, with the session lent to it.
        case authenticating(SessionAuthenticator, inFlight: Bool)
        case ready
        case disconnecting(disconnectSent: Bool)
        case closed
    }
    private var state = State.idle
    private var link: SessionLink?
    private var transport: SessionTransport?
    private var session: SSHSession?
    private var setupDeadline: Scheduled<Void>?
    private var hostKeyType = "", hostKeyFingerprint = "", hostKeyStatus = ""
    private var algorithms = NegotiatedAlgorithms()
    private var authenticationStarted = false
    /// Bytes from the server that arrived while the session was lent to the pool.
    private var heldInbound: ByteBuffer?
    /// The remote forwards this session asks the server for (see `RemoteForwards`; hooks marked "remote forwards").
    let remoteForwards: RemoteForwards
    /// Authenticated, but not announced as up until the server agreed to every remote forward (ExitOnForwardFailure).
    private var readyWaitingForRemoteForwards: SessionInfo?

    // Forwarded connections.
    private var forwards: [Int: ForwardedConnection] = [:] {
        didSet { onForwardCountChange?(forwards.count) }
    }
    /// Told how many forwarded connections this session carries whenever that changes (opens and closes only,
    /// never on the data path): `HostTunnel` shows it per session with `TunnelSessions`.
    var onForwardCountChange: ((Int) -> Void)?
    private var nextForwardID = 0
    private let channels = SSHChannelSet()
    /// The forwarded connection that owns each slot of `channels`.
    private var slotOwners: [ForwardedConnection?] = []
    /// Connections to step on this pump, each once.
    private var scheduled: [ForwardedConnection] = []
    private var stepping: [ForwardedConnection] = []
    /// Connections waiting for the server to widen their channel's window, or to finish a half-sent grant of ours.
    private var waitingForWindow: [Int: ForwardedConnection] = [:]
    /// Connections that stopped reading their client because the session's output was congested.
    private var waitingForOutput: [Int: ForwardedConnection] = [:]
    /// Bytes from the server have arrived since libssh2 last parsed them.
    private var serverBytesPending = false
    /// How many, this burst.
    private var burstBytes = 0
    /// Packets of this burst taken by other than reads: open answers, window adjusts that woke a connection.
    private var controlPackets = 0
    /// Which channels to ask after a burst; a sweep asks them all.
    private var watch = InputWatch()
    /// The idle `session` channel libssh2 reads the transport through (see `SSHChannelSet.drain`): it makes the
    /// session answer the server's keepalives and key re-exchanges when no forwarded connection is open, and it is
    /// never read for data, so a half-sent window adjust of a real channel cannot be finished with a wrong size.
    private enum DrainChannel {
        case notOpened, opening(since: NIODeadline), open(SSHChannel)
        /// Not opened (the server refused a session channel, e.g. `MaxSessions 0`; or the session is ending):
        /// the oldest forwarded channel is read through instead.
        case unavailable
    }
    private var drainChannel = DrainChannel.notOpened
    /// The server has answered the idle channel's open (or it will not be opened).
    private var drainChannelSettled: Bool {
        switch drainChannel {
        case .notOpened, .opening: return false
        case .open, .unavailable: return true
        }
    }
    private var drainThrough: SSHChannel? { if case .open(let channel) = drainChannel { return channel } else { return nil } }
    /// When the open at the head of the queue was first sent (a round-trip sample when it is answered).
    private var openSentAt: NIODeadline?
    private var sweepDue = false
    /// Dead-link detection (nil when `ServerAliveInterval` is 0): see `Keepalive`.
    private var keepalive: Keepalive?
    private var keepaliveTimer: Scheduled<Void>?
    private enum Probe {
        case idle
        /// A tick asked for one; it goes out on the next pump.
        case wanted
        /// Sent on the drain channel; libssh2 takes the reply when it comes.
        case inFlight
        /// The server refuses session channels: a probe is a new attempt to open one (its refusal is the reply).
        case byOpen

        /// A probe to send on the drain channel, or one whose reply libssh2 has yet to take.
        var isPending: Bool {
            switch self {
            case .wanted, .inFlight: return true
            case .idle, .byOpen: return false
            }
        }
    }
    private var probe = Probe.idle
    private var sweepTimer: Scheduled<Void>?
    private var sweepDeadline = NIODeadline.distantPast
    /// libssh2 runs one channel-open at a time per session, so opens wait here in arrival order.
    private var openQueue = CircularBuffer<OpenRequest>()
    private var openInFlight = false
    /// Channels being closed and freed (each may need a reply from the server).
    private var retiring: [SSHChannel] = []
    /// One read buffer for every channel of this session: reads that find nothing allocate nothing.
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: SSHConnection.readChunk, alignment: 16)

    private var pumping = false
    private var pumpAgain = false

    private let readyPromise: EventLoopPromise<SessionInfo>
    private let closedPromise: EventLoopPromise<TunnelError?>
    private var closeWaiters: [EventLoopPromise<Void>] = []

    private struct OpenRequest {
        let forward: ForwardedConnection
        let target: ChannelTarget
        let completion: (Result<Void, ChannelOpenFailure>) -> Void
    }

    /// Bytes queued for the server above which connections stop taking more from their clients.
    static let outboundHighWater = 1024 * 1024
    /// One read from a channel: a little more than libssh2's 32 KiB packet.
    static let readChunk = 64 * 1024

    /// `remoteForwardIndexOffset`: where the remote forwards' counts start in `counters` (after the tunnel's local
    /// and dynamic forwards).
    /// `remoteForwards`: the forwards to ask for, each with its place in `counters` (nil: `settings.remoteForwards`,
    /// counted from `remoteForwardIndexOffset`).
    init(settings: ConnectionSettings, eventLoop: EventLoop, counters: TunnelCounters, remoteForwardIndexOffset: Int = 0,
         remoteForwards: [(spec: RemoteForwardSpec, counterIndex: Int?)]? = nil, logger: Logger) {
        self.settings = settings
        self.eventLoop = eventLoop
        self.counters = counters
        self.remoteForwardIndexOffset = remoteForwardIndexOffset
        var logger = logger
        logger[metadataKey: "tunnel"] = "\(settings.name)"
        logger[metadataKey: "peer"] = "\(settings.hostName):\(settings.port)"
        self.logger = logger
        self.readyPromise = eventLoop.makePromise()
        self.closedPromise = eventLoop.makePromise()
        let wanted = remoteForwards ?? settings.remoteForwards.enumerated().map { ($1, remoteForwardIndexOffset + $0) }
        self.remoteForwards = RemoteForwards(wanted, exitOnFailure: settings.exitOnForwardFailure, eventLoop: eventLoop, logger: logger)
        self.remoteForwards.wake = { [weak self] in self?.pump() }
    }

    deinit { scratch.deallocate() }

    /// This connection, for closures that run on its loop (checked there).
    private var onLoop: NIOLoopBound<SSHConnection> { NIOLoopBound(self, eventLoop: eventLoop) }

    /// Completes when the session has ended, with the reason (nil for a requested close).
    var closeFuture: EventLoopFuture<TunnelError?> { closedPromise.futureResult }

    /// [ProxyJump] How to reach the server when not by TCP: a link over a jump host's channel (`HopChain`). Set
    /// before `connect()`; its failure (a `TunnelError`) ends the attempt as a failed TCP connect would.
    /// (A `TCPLink` either way: `JumpLink` joins the two sessions with a socket pair, see there.)
    var linkOpener: ((SessionLinkEvents) -> EventLoopFuture<TCPLink>)?

    // MARK: - Connect

    /// TCP connect, handshake, host-key check, authentication. Succeeds once channels can be opened.
    /// `ConnectionAttempts` TCP connects, one second apart, each bounded by `ConnectTimeout`, as OpenSSH; the
    /// name is resolved again for each (a server that moved is found). Then handshake and authentication are
    /// bounded by `ConnectTimeout` again. Call on the event loop.
    func connect() -> EventLoopFuture<SessionInfo> {
        eventLoop.assertInEventLoop()
        guard case .idle = state else { return readyPromise.futureResult }
        state = .connecting
        let settings = self.settings
        let this = onLoop
        // known_hosts first (off the loop): it decides which host-key algorithms to ask the server for.
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            // An unreadable file is reported by the host-key check; here it only costs the preferred order.
            HostKeyVerifier.preferredAlgorithms(host: settings.hostName, port: settings.port,
                                                knownHosts: (try? KnownHostsCache.shared.load(settings.hostKeyPolicy)) ?? KnownHosts())
        }
        .flatMap { algorithms -> EventLoopFuture<([String], TCPLink)> in
            // [ProxyJump] Through a jump host's channel when the owner said how; else TCP.
            let link = this.value.linkOpener?(this.value)
                ?? this.value.connectLink(attemptsLeft: max(settings.connectionAttempts, 1))
            return link.map { (algorithms, $0) }
        }
        .whenComplete { result in
            switch result {
            case .success(let (algorithms, link)): this.value.linkConnected(link, preferring: algorithms)
            case .failure(let error as TunnelError): this.value.fail(error)
            case .failure(let error): this.value.fail(.connectionLost(reason: plainReason(error)))
            }
        }
        return readyPromise.futureResult
    }

    private func connectLink(attemptsLeft: Int) -> EventLoopFuture<TCPLink> {
        let settings = self.settings
        let this = onLoop
        return TCPLink.connect(host: settings.hostName, port: settings.port,
                               timeout: .seconds(settings.connectTimeoutSeconds), on: eventLoop, events: self)
            .flatMapError { [eventLoop] error -> EventLoopFuture<TCPLink> in
                let failure = TunnelError.connectFailed(host: settings.hostName, port: settings.port, reason: plainReason(error))
                guard attemptsLeft > 1, case .connecting = this.value.state else { return eventLoop.makeFailedFuture(failure) }
                this.value.logger.debug("\(failure); trying again in 1 s (ConnectionAttempts)")
                return eventLoop.scheduleTask(in: .seconds(1)) {}.futureResult.flatMap {
                    this.value.connectLink(attemptsLeft: attemptsLeft - 1)
                }
            }
    }

    private func linkConnected(_ link: TCPLink, preferring algorithms: [String]) {
        guard case .connecting = state else {
            link.close()
            return
        }
        self.link = link
        let this = onLoop
        let settings = self.settings
        scheduleSetupDeadline()
        let transport = SessionTransport(allocator: ByteBufferAllocator())
        self.transport = transport
        do {
            let session = try SSHSession(transport: transport)
            // The config's lists over tunnel's own order; a list that leaves nothing was refused before connecting
            // (`TunnelService.unsupportedSetting`), and here leaves libssh2's own list.
            let preference = AlgorithmPreference.linked(settings.algorithmLists)
            for (kind, names) in preference.offered { session.prefer(names, for: kind.ssh2) }
            // Without HostKeyAlgorithms, the key types known_hosts has for the server first (as OpenSSH does).
            if preference.offered[.hostKey] == nil { session.preferHostKeyAlgorithms(algorithms) }
            self.session = session
        } catch {
            return fail(.ssh(SSHFailure(error)))
        }
        state = .handshaking
        pump()
    }

    /// `ConnectTimeout` bounds handshake and authentication, but not a person typing a password: while one is
    /// asked, the deadline is put off (it fires again after another `ConnectTimeout`).
    private func scheduleSetupDeadline() {
        let this = onLoop
        let settings = self.settings
        setupDeadline = eventLoop.scheduleTask(in: .seconds(settings.connectTimeoutSeconds)) {
            if case .authenticating(let authenticator, inFlight: true) = this.value.state,
               authenticator.waitingForPerson.withLockedValue({ $0 }) {
                return this.value.scheduleSetupDeadline()
            }
            this.value.fail(.timedOut("no SSH session with \(settings.peer) within \(settings.connectTimeoutSeconds) s of connecting"))
        }
    }

    /// After the handshake: judge the host key on the pool (known_hosts lookups hash every hashed entry, and a new
    /// key may be written to the file), then go on to authentication.
    private func verifyHostKey(_ session: SSHSession) throws(TunnelError) {
        guard let key = session.hostKey else {
            throw TunnelError.hostKeyRefused(.noHostKey(name: KnownHosts.lookupName(host: settings.hostName, port: settings.port)))
        }
        hostKeyType = key.typeName
        hostKeyFingerprint = Fingerprint.sha256(key.blob)
        state = .verifyingHostKey
        let settings = self.settings
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { () -> HostKeyDecision in
            let policy = settings.hostKeyPolicy
            let knownHosts: KnownHosts
            do throws(HostKeyRefusal) { knownHosts = try KnownHostsCache.shared.load(policy) } catch { return .refused(error) }
            let decision = HostKeyVerifier.verify(host: settings.hostName, port: settings.port, keyType: key.typeName,
                                                  key: key.blob, policy: policy, knownHosts: knownHosts)
            guard case .recordNew(let path) = decision else { return decision }
            return HostKeyVerifier.record(host: settings.hostName, port: settings.port, keyType: key.typeName,
                                          key: key.blob, in: path, policy: policy)
        }.whenComplete { [this = onLoop] result in
            guard case .verifyingHostKey = this.value.state else { return }
            switch result {
            case .success(let decision): this.value.hostKeyDecided(decision, key: key)
            case .failure(let error): this.value.fail(.connectionLost(reason: "the host-key check did not run: \(error)"))
            }
        }
    }

    private func hostKeyDecided(_ decision: HostKeyDecision, key: SSHHostKey) {
        let lookupName = KnownHosts.lookupName(host: settings.hostName, port: settings.port)
        if settings.hostKeyPolicy.mode == .off {
            logger.warning("StrictHostKeyChecking no: an unknown host key for \(lookupName) would be accepted without checking (changed keys are still refused)")
        }
        switch decision {
        case .trusted(let entry):
            hostKeyStatus = "known_hosts \(entry.file):\(entry.line)"
        case .recordedNew(let path), .recordNew(let path):  // the pool turned .recordNew into one of the others
            hostKeyStatus = "new host key recorded in \(path)"
            logger.notice("new host key \(key.typeName) \(hostKeyFingerprint) for \(lookupName) recorded in \(path) (StrictHostKeyChecking \(settings.hostKeyPolicy.mode.rawValue))")
        case .unchecked:
            hostKeyStatus = "not checked"
            logger.warning("host key \(key.typeName) \(hostKeyFingerprint) for \(lookupName) NOT checked and not recorded: anyone on the path could pose as this server")
        case .refused(let message):
            return fail(.hostKeyRefused(message))
        }
        state = .authenticating(SessionAuthenticator(settings: settings, logger: logger), inFlight: false)
        pump()
    }

    /// Run one authentication step on the pool: it reads key files and may decrypt a key. The session is lent to
    /// the pool thread for the step; meanwhile the loop leaves it and the transport alone (bytes from the server
    /// are held in `heldInbound`), so there is one user at a time, and the future's completion hands it back.
    private func startAuthenticationStep(_ authenticator: SessionAuthenticator, _ session: SSHSession) {
        // Whatever libssh2 queued before goes out first: the step may wait for the server's answer to it.
        flushToServer()
        // The write can fail at once and end the session (the link reports it synchronously).
        guard case .authenticating = state else { return }
        serverBytesPending = false
        state = .authenticating(authenticator, inFlight: true)
        let lent = Lent((authenticator, session))
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { () throws(TunnelError) -> String? in
            try lent.value.0.step(lent.value.1)
        }.whenComplete { [this = onLoop] result in
            this.value.authenticationStepEnded(result, authenticator: lent.value.0, lent: lent.value.1)
        }
    }

    private func authenticationStepEnded(_ result: Result<String?, Error>, authenticator: SessionAuthenticator,
                                         lent session: SSHSession) {
        // The session is back on the loop: release what arrived meanwhile to libssh2.
        if var held = heldInbound {
            heldInbound = nil
            transport?.append(fromServer: &held)
            serverBytesPending = true
        }
        guard case .authenticating = state else {
            // Stopped or failed while the step ran: the session could not be invalidated then; do it now.
            session.invalidate()
            return
        }
        switch result {
        case .success(let identity?): becomeReady(identity: identity)
        case .success(nil):
            state = .authenticating(authenticator, inFlight: false)
            flushToServer()
        case .failure(let error as TunnelError): return fail(error)
        case .failure(let error): return fail(.connectionLost(reason: "\(error)"))
        }
        pump()
    }

    private func becomeReady(identity: String) {
        state = .ready
        let info = SessionInfo(hostKeyType: hostKeyType, hostKeyFingerprint: hostKeyFingerprint,
                               hostKeyStatus: hostKeyStatus, identityFile: identity, algorithms: algorithms)
        // [remote forwards] With ExitOnForwardFailure yes, up means every remote forward listens (the setup deadline
        // still bounds the wait); `advance` announces it then.
        if remoteForwards.holdsReadiness {
            readyWaitingForRemoteForwards = info
            return
        }
        announceReady(info)
    }

    private func announceReady(_ info: SessionInfo) {
        setupDeadline?.cancel()
        setupDeadline = nil
        counters.sessionEstablished()
        startKeepalive()
        readyPromise.succeed(info)
    }

    /// Whether the session is lent to the pool (nothing on the loop may touch it or its transport).
    private var sessionLent: Bool {
        if case .authenticating(_, inFlight: true) = state { return true }
        return false
    }

    // MARK: - Forwarded connections

    /// Whether the session is up: channels can be opened now.
    var isReady: Bool {
        // [remote forwards] Not while ExitOnForwardFailure holds the session's "up" for its remote forwards.
        if case .ready = state, readyWaitingForRemoteForwards == nil { return true } else { return false }
    }

    /// Whether new clients can be handed to this session (now or once it is up).
    var acceptsClients: Bool {
        switch state {
        case .disconnecting, .closed: return false
        default: return true
        }
    }

    /// A new forwarded connection on this session (attach its ends, then `open` its channel).
    /// `forwardIndex`: which of the tunnel's forwards it came through (`HostTunnel.forwardIndex`), for its counts.
    func makeForward(label: String, forwardIndex: Int? = nil) -> ForwardedConnection {
        nextForwardID += 1
        let forward = ForwardedConnection(id: nextForwardID, label: label, counters: counters, forwardIndex: forwardIndex,
                                          logger: logger, windowLimits: settings.receiveWindow)
        forwards[forward.id] = forward
        return forward
    }

    /// Ask the server for a channel to `target` for `forward`, and attach it. A client that arrives while the session
    /// is being set up waits in the queue; the wait is bounded by the connect timeout, after which `fail` closes it.
    /// `completion` runs on the loop when the open succeeded (the channel is attached) or failed; not at all if
    /// `forward` was closed meanwhile (its channel, if one came, is freed).
    func open(_ forward: ForwardedConnection, to target: ChannelTarget,
              completion: @escaping (Result<Void, ChannelOpenFailure>) -> Void) {
        eventLoop.assertInEventLoop()
        guard acceptsClients else {
            return completion(.failure(ChannelOpenFailure(message: "the SSH session has ended")))
        }
        openQueue.append(OpenRequest(forward: forward, target: target, completion: completion))
        if case .ready = state { pump() } else { logger.debug("client waits for the SSH session") }
    }

    /// Something happened on `forward`'s client socket: step it (and only it) on the next pump.
    func clientEvent(_ forward: ForwardedConnection) {
        schedule(forward)
        pump()
    }

    private func schedule(_ forward: ForwardedConnection) {
        guard !forward.isScheduled else { return }
        forward.isScheduled = true
        scheduled.append(forward)
    }

    // MARK: - Close

    /// End the session politely: close every forward, free every channel, send SSH_MSG_DISCONNECT, close the link.
    /// Bounded: after `deadline` the connection is torn down regardless. Safe to call again while closing.
    /// Call on the event loop.
    func close(deadline: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        eventLoop.assertInEventLoop()
        let promise = eventLoop.makePromise(of: Void.self)
        closeWaiters.append(promise)
        switch state {
        case .closed:
            finishClose()
        case .disconnecting:
            break  // already on its way; this caller waits for the same end
        case .ready:
            state = .disconnecting(disconnectSent: false)
            for forward in forwards.values { forward.close(.abort) }
            eventLoop.scheduleTask(in: deadline) { [this = onLoop] in this.value.fail(nil) }
            pump()
        default:
            fail(nil)
        }
        return promise.futureResult
    }

    private func finishClose() {
        let waiters = closeWaiters
        closeWaiters = []
        for waiter in waiters { waiter.succeed(()) }
    }

    /// Tear everything down now. `error` nil means a requested stop.
    private func fail(_ error: TunnelError?) {
        if case .closed = state { return }
        let lent = sessionLent
        state = .closed
        setupDeadline?.cancel()
        // The owner reports the reason from closeFuture; here it is only traced.
        if let error { logger.debug("session ended: \(error)") }
        // A session lent to the pool is invalidated when it comes back (see startAuthenticationStep).
        if !lent { session?.invalidate() }
        remoteForwards.sessionEnded()  // [remote forwards]
        // A lost session cuts its connections (the clients see a reset); a requested stop closes them.
        for forward in forwards.values { if error == nil { forward.close(.abort) } else { forward.cut() } }
        forwards.removeAll()
        let requests = openQueue
        openQueue.removeAll()
        for request in requests { request.completion(.failure(ChannelOpenFailure(message: "the SSH session ended"))) }
        scheduled.removeAll()
        sweepTimer?.cancel()
        sweepTimer = nil
        keepaliveTimer?.cancel()
        keepaliveTimer = nil
        waitingForWindow.removeAll()
        waitingForOutput.removeAll()
        slotOwners.removeAll()
        retiring.removeAll()
        drainChannel = .unavailable
        link?.close()
        link = nil
        session = nil
        readyPromise.fail(error ?? TunnelError.stopped)
        closedPromise.succeed(error)
        finishClose()
    }

    /// [remote forwards] Ask for one more forward on this session (a reload added it). On the loop.
    func addRemoteForward(_ spec: RemoteForwardSpec, counterIndex: Int?, moved: Bool = false) {
        remoteForwards.add(spec, counterIndex: counterIndex, moved: moved)
    }

    /// [remote forwards] Cancel a forward a reload removed (`cancel-tcpip-forward`). On the loop.
    func removeRemoteForward(_ spec: RemoteForwardSpec) {
        remoteForwards.remove(spec)
    }

    // MARK: - The pump

    /// Run every pending libssh2 step until each would block; then hand libssh2's output to the link.
    /// libssh2 must never be re-entered, and NIO can call back synchronously (writability changes inside a write),
    /// hence the `pumping`/`pumpAgain` pair.
    func pump() {
        eventLoop.assertInEventLoop()
        if pumping {
            pumpAgain = true
            return
        }
        pumping = true
        defer { pumping = false }
        repeat {
            pumpAgain = false
            do {
                try advance()
            } catch let error as TunnelError {
                return fail(error)
            } catch let error as SSH2Error {
                return fail(transport?.serverClosed == true ? .connectionLost(reason: "the server closed the connection") : .ssh(SSHFailure(error)))
            } catch {
                return fail(.connectionLost(reason: "\(error)"))
            }
            flushToServer()
        } while pumpAgain
    }

    private var outboundCongested: Bool {
        guard let link, let transport else { return true }
        return !link.isWritable || transport.pendingOutbound > Self.outboundHighWater
    }

    private func advance() throws {
        guard let session, !sessionLent else { return }
        switch state {
        case .handshaking:
            do {
                guard case .done = try session.handshake() else { return }
            } catch {
                throw TunnelError.ssh(SSHFailure(error))
            }
            if let methods = session.negotiatedMethods { algorithms = NegotiatedAlgorithms(methods) }
            if let mac = session.inboundMAC, let length = InputWatch.macLength(mac) {
                watch.framingPerPacket = 14 + 19 + length
            }
            try verifyHostKey(session)
        case .authenticating(let authenticator, inFlight: false):
            // A step that would block waits for the server's next bytes (the first step starts at once).
            guard serverBytesPending || !authenticationStarted else { return }
            authenticationStarted = true
            startAuthenticationStep(authenticator, session)
        case .ready:
            // Packets of a new burst that opens (and window wake-ups, below) take are counted from here.
            if serverBytesPending { controlPackets = 0 }
            // [remote forwards] Requests first: see RemoteForwards for why before anything else reads.
            try remoteForwards.request(session, mayStart: drainChannelSettled)
            try driveOpens(session)
            // [remote forwards] The first request starts once the idle channel's open was answered (just now, maybe).
            if drainChannelSettled && remoteForwards.hasDue { try remoteForwards.request(session, mayStart: true) }
            if let info = readyWaitingForRemoteForwards, remoteForwards.allListening {
                readyWaitingForRemoteForwards = nil
                announceReady(info)
            }
            let now = NIODeadline.now()
            var received = 0
            // libssh2 parses what arrived once, for the burst and a due sweep alike.
            if serverBytesPending || sweepDue { try channels.drain(session: session, through: drainThrough) }
            if serverBytesPending {
                serverBytesPending = false
                received = burstBytes
                burstBytes = 0
                askBusyChannels(now: now)
            }
            if sweepDue {
                sweepDue = false
                sweepAllChannels()
            }
            // [remote forwards] Connections the server forwarded, parsed by now.
            if !remoteForwards.isEmpty { try remoteForwards.accept(adoptForwardedChannel) }
            if probe.isPending { try sendProbe() }
            let (delivered, packets) = try stepScheduled(now: now)
            if received > 0 {
                switch watch.sweep(received: received, delivered: delivered, packets: packets + controlPackets) {
                case .now:
                    sweepAllChannels()
                    _ = try stepScheduled(now: now)
                case .soon:
                    scheduleSweep(in: InputWatch.sweepDelay, now: now)
                case .backstop:
                    scheduleSweep(in: InputWatch.backstopDelay, now: now)
                }
            }
            // Channels closed just now send their CLOSE at once; others finish when the server's reply arrives.
            if !retiring.isEmpty { driveRetiring() }
        case .disconnecting(let disconnectSent):
            for forward in forwards.values { retire(forward) }
            // An open already handed to libssh2 must be driven to its end; the others never started.
            while openQueue.count > (openInFlight ? 1 : 0) {
                openQueue.removeLast().completion(.failure(ChannelOpenFailure(message: "the tunnel is stopping")))
            }
            if case .notOpened = drainChannel { drainChannel = .unavailable }
            if case .opening = drainChannel { try driveOpens(session) }
            if openInFlight { try driveOpens(session) }
            if case .open(let channel) = drainChannel {
                drainChannel = .unavailable
                retiring.append(channel)
            }
            driveRetiring()
            var drainOpening = false
            if case .opening = drainChannel { drainOpening = true }
            guard retiring.isEmpty, !openInFlight, !drainOpening, !disconnectSent else { return }
            guard case .done = session.disconnect(reason: "tunnel stopping") else { return }
            state = .disconnecting(disconnectSent: true)
            flushToServer()
            // Close once the disconnect message has left.
            guard let link else { return fail(nil) }
            link.flushed().whenComplete { [this = onLoop] _ in this.value.fail(nil) }
        case .idle, .connecting, .verifyingHostKey, .authenticating, .closed:
            return
        }
    }

    /// After a burst from the server (already parsed by libssh2): schedule the busy connections whose channel has
    /// data or reached end of stream, and those whose window the server may have widened.
    private func askBusyChannels(now: NIODeadline) {
        watch.forEachSlotToAsk(at: now) { slot in
            if channels.hasInput(slot: slot), let owner = slotOwners[slot] { schedule(owner) }
        }
        if !waitingForWindow.isEmpty {
            for (id, forward) in waitingForWindow where forward.waits.contains(.grant) || (forward.channel?.writeWindow ?? 1) > 0 {
                waitingForWindow[id] = nil
                controlPackets += 1  // the window adjust that woke it
                schedule(forward)
            }
        }
    }

    /// Ask every channel (see `InputWatch` for when).
    private func sweepAllChannels() {
        sweepTimer?.cancel()
        sweepTimer = nil
        channels.forEachSlotWithInput { slot in
            if let owner = slotOwners[slot] { schedule(owner) }
        }
    }

    /// Make sure a sweep runs within `delay` (an earlier one already scheduled will do).
    private func scheduleSweep(in delay: TimeAmount, now: NIODeadline) {
        if sweepTimer != nil, sweepDeadline <= now + delay { return }
        sweepTimer?.cancel()
        sweepDeadline = now + delay
        sweepTimer = eventLoop.scheduleTask(in: delay) { [this = onLoop] in
            let connection = this.value
            connection.sweepTimer = nil
            guard case .ready = connection.state else { return }
            connection.sweepDue = true
            connection.pump()
        }
    }

    /// Step every scheduled connection; returns the bytes they took from the server, and how many packets.
    private func stepScheduled(now: NIODeadline) throws -> (delivered: Int, packets: Int) {
        var delivered = 0, packets = 0
        while !scheduled.isEmpty {
            // Swap in the spare array instead of copying: stepping may schedule more, into the emptied one.
            swap(&scheduled, &stepping)
            defer { stepping.removeAll(keepingCapacity: true) }
            for forward in stepping {
                forward.isScheduled = false
                try forward.step(outboundCongested: outboundCongested, scratch: scratch)
                delivered += forward.stepReceived
                packets += forward.stepPackets
                if forward.isClosed {
                    retire(forward)
                    continue
                }
                // [remote dynamic] The channel's SOCKS request named a target: connect it from here.
                if let target = forward.takeTargetToConnect() {
                    RemoteTarget.connect(forward, host: target.host, port: target.port, connection: self)
                }
                if let slot = forward.slot {
                    if forward.stepReceived > 0 { watch.noteReceived(slot: slot, at: now) }
                    if forward.stepSent > 0 { watch.noteSent(slot: slot, at: now) }
                }
                if !forward.waits.isDisjoint(with: [.serverWindow, .grant]) { waitingForWindow[forward.id] = forward }
                if forward.waits.contains(.sessionOutput) { waitingForOutput[forward.id] = forward }
            }
        }
        return (delivered, packets)
    }

    private func driveOpens(_ session: SSHSession) throws {
        // The idle drain channel first, once per session (libssh2 opens one channel at a time, so never while
        // another open is in flight). Where the server refused it, a keepalive probe asks for it again.
        if case .byOpen = probe, case .unavailable = drainChannel, !openInFlight {
            probe = .idle
            drainChannel = .notOpened
        }
        if case .notOpened = drainChannel, !openInFlight { drainChannel = .opening(since: .now()) }
        if case .opening(let since) = drainChannel {
            do {
                guard case .done(let channel) = try session.openIdleSession() else { return }
                drainChannel = .open(channel)
                watch.noteRoundTrip(.now() - since)
            } catch {
                if error.isSessionFatal { throw error }
                drainChannel = .unavailable
                logger.debug("the server refused an idle session channel (\(error.message)); reading through the oldest forwarded channel instead")
            }
        }
        while let request = openQueue.first {
            let forward = request.forward
            if forward.isClosed && !openInFlight {
                openQueue.removeFirst()
                continue
            }
            openInFlight = true
            let step: SSHStep<SSHChannel>
            do {
                switch request.target {
                case .tcp(let host, let port):
                    step = try session.openDirectTCPIP(host: host, port: port,
                                                       originHost: forward.originHost, originPort: forward.originPort,
                                                       receiveWindow: settings.receiveWindow.base)
                case .unixSocket(let path):
                    step = try session.openDirectStreamLocal(path: path)
                }
            } catch {
                openInFlight = false
                openSentAt = nil
                openQueue.removeFirst()
                if error.isSessionFatal { throw error }
                request.completion(.failure(ChannelOpenFailure(message: error.message.isEmpty ? error.description : error.message)))
                // The completion may have closed it (a client already gone does not step again): forget it.
                if forward.isClosed { retire(forward) }
                continue
            }
            guard case .done(let channel) = step else {
                if openSentAt == nil { openSentAt = .now() }
                return
            }
            if let sent = openSentAt {
                // Includes the server's connect to the target: an upper bound of the round trip, hence clamped.
                watch.noteRoundTrip(.now() - sent)
                openSentAt = nil
            }
            openInFlight = false
            openQueue.removeFirst()
            controlPackets += 1  // the server's answer
            let slot = channels.insert(channel)
            let openedWith: Int
            if case .tcp = request.target { openedWith = settings.receiveWindow.base } else { openedWith = SSHChannel.defaultReceiveWindow }
            guard forward.attach(channel: channel, slot: slot, openedWith: openedWith) else {
                channels.remove(slot: slot)
                retiring.append(channel)
                continue
            }
            while slotOwners.count <= slot { slotOwners.append(nil) }
            slotOwners[slot] = forward
            watch.noteReceived(slot: slot, at: .now())
            request.completion(.success(()))
            // The server may already have sent data on it.
            schedule(forward)
        }
    }

    /// [remote forwards] A connection the server forwarded (`forwarded-tcpip`, already confirmed by libssh2): pair
    /// its channel with a new forwarded connection, then connect that connection's local end to the target. For a
    /// remote dynamic forward (no target) the target comes from a SOCKS request read from the channel first
    /// (`ChannelSideHandshake`); stepping the connection reads it, and `stepScheduled` connects what it names.
    private func adoptForwardedChannel(_ channel: SSHChannel, _ spec: RemoteForwardSpec, _ index: Int?) {
        let target = spec.targetHostAndPort
        guard target != nil || spec.isRemoteDynamic else {
            retiring.append(channel)
            return
        }
        // Where this forward is counted (after the tunnel's local and dynamic ones), carried by its entry: the spec
        // here has the port the server chose, so it cannot be looked up in the config's list.
        counters.connectionAccepted(forward: index)
        let serverSide = "RemoteForward \(spec.serverSideText(port: spec.listenPort))"
        let forward = makeForward(label: target == nil ? "\(serverSide) (remote SOCKS)" : "\(serverSide) -> \(spec.targetText)",
                                  forwardIndex: index)
        let slot = channels.insert(channel)
        _ = forward.attach(channel: channel, slot: slot)
        while slotOwners.count <= slot { slotOwners.append(nil) }
        slotOwners[slot] = forward
        watch.noteReceived(slot: slot, at: .now())
        controlPackets += 1  // the server's open
        if let target {
            RemoteTarget.connect(forward, host: target.host, port: target.port, connection: self)
            return
        }
        forward.startChannelHandshake(permit: settings.permitRemoteOpen)
        // A client on the server's side that never finishes its request is closed alone.
        let seconds = settings.remoteSOCKSHandshakeTimeout
        eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { [this = onLoop, forward = NIOLoopBound(forward, eventLoop: eventLoop)] in
            let forward = forward.value
            guard forward.isReadingChannelHandshake, !forward.isClosed else { return }
            forward.logger.debug("\(forward.label): no complete SOCKS request within \(seconds) s; closing this channel")
            forward.close(.abort)
            this.value.clientEvent(forward)
        }
        // The request may have come with the open.
        schedule(forward)
    }

    private func retire(_ forward: ForwardedConnection) {
        if let (channel, slot) = forward.takeChannelToRetire() {
            channels.remove(slot: slot)
            slotOwners[slot] = nil
            watch.forget(slot: slot)
            retiring.append(channel)
        }
        if forward.isClosed {
            forwards[forward.id] = nil
            waitingForWindow[forward.id] = nil
            waitingForOutput[forward.id] = nil
        }
    }

    private func driveRetiring() {
        retiring.removeAll { channel in
            if case .done = channel.free() { return true }
            return false
        }
    }

    private func flushToServer() {
        guard !sessionLent, let link, let bytes = transport?.takeOutbound() else { return }
        link.send(bytes)
        // What stopped for congestion can go on if the link still takes more.
        if !waitingForOutput.isEmpty && link.isWritable { wakeOutputWaiters() }
    }

    private func wakeOutputWaiters() {
        for forward in waitingForOutput.values { schedule(forward) }
        waitingForOutput.removeAll()
        pumpAgain = true
    }

    // MARK: - Keepalive

    /// The longest between two keepalive ticks, so a wake from sleep is noticed within this (NIO's timers stop
    /// while the machine sleeps; `Keepalive` compares with a clock that does not).
    static let keepaliveTickLimit = 5.0

    private func startKeepalive() {
        guard settings.serverAliveInterval > 0 else { return }
        let now = KeepaliveClock.now()
        keepalive = Keepalive(interval: settings.serverAliveInterval, countMax: settings.serverAliveCountMax, now: now)
        scheduleKeepaliveTick(at: now + settings.serverAliveInterval, now: now)
    }

    private func scheduleKeepaliveTick(at due: Double, now: Double) {
        let delay = min(max(due - now, 0.001), Self.keepaliveTickLimit)
        let tickDue = now + delay
        keepaliveTimer = eventLoop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { [this = onLoop] in
            this.value.keepaliveTick(due: tickDue)
        }
    }

    private func keepaliveTick(due: Double) {
        keepaliveTimer = nil
        guard case .ready = state, keepalive != nil else { return }
        let now = KeepaliveClock.now()
        switch keepalive!.tick(at: now, due: due) {
        case .wait(let until):
            scheduleKeepaliveTick(at: until, now: now)
        case .probe(let next):
            logger.debug("no data from the server for \(Int(now - keepalive!.lastHeard)) s: keepalive \(keepalive!.probesUnanswered) of \(keepalive!.countMax)")
            if case .idle = probe { probe = .wanted }
            scheduleKeepaliveTick(at: next, now: now)
            pump()
        case .dead(let probes, let seconds):
            fail(.keepaliveTimeout(probes: probes, seconds: Int(seconds.rounded())))
        }
    }

    /// Send the wanted probe, or take the reply to the one in flight.
    private func sendProbe() throws {
        guard let channel = drainThrough else {
            // No kept session channel: ask for one again (the answer, yes or no, is what the probe needs). While
            // the first one is still being opened, the probe waits for it.
            if case .unavailable = drainChannel { probe = .byOpen }
            return
        }
        if case .wanted = probe { counters.keepaliveSent() }
        do {
            switch try channel.keepaliveRequest() {
            case .wouldBlock: probe = .inFlight
            case .done: probe = .idle
            }
        } catch {
            // libssh2 gives up waiting for a reply after 60 s; the keepalive count, not libssh2, decides when the
            // session is dead, so only a broken transport ends it here.
            probe = .idle
            if error.isSessionFatal && error.kind != .timeout { throw error }
            logger.debug("keepalive: \(error)")
        }
    }

    // MARK: - SessionLinkEvents

    func linkReceived(_ bytes: inout ByteBuffer) {
        if sessionLent {
            if heldInbound == nil { heldInbound = bytes } else { heldInbound!.writeBuffer(&bytes) }
            return
        }
        burstBytes += bytes.readableBytes
        transport?.append(fromServer: &bytes)
        serverBytesPending = true
    }

    func linkReadComplete() {
        // Any byte from the server proves the link alive (one clock read per burst).
        if keepalive != nil { keepalive!.heard(at: KeepaliveClock.now()) }
        if serverBytesPending { pump() }
    }

    func linkWritable() {
        if !waitingForOutput.isEmpty { wakeOutputWaiters() }
        pump()
    }

    func linkClosed(reason: String?) {
        if case .closed = state { return }
        if let reason { return fail(.connectionLost(reason: reason)) }
        if case .disconnecting = state { return fail(nil) }
        if sessionLent { return fail(.connectionLost(reason: "the server closed the connection")) }
        transport?.serverClosed = true
        serverBytesPending = true
        pump()
        fail(.connectionLost(reason: "the server closed the connection"))
    }
}

/// Something handed to the thread pool and back, used by one thread at a time: the loop does not touch it while the
/// pool runs, and gets it back through the future's completion (which orders the two).
private struct Lent<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

