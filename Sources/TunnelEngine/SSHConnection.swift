import Foundation
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
    public var identityFile: String
}

/// One SSH session to one server, pinned to one NIO event loop.
///
/// NIO owns the TCP socket; libssh2 reads and writes through `SessionTransport`. On every event (bytes from the
/// server, bytes from a local client, a writability change) `pump()` runs each pending libssh2 step until it would
/// block. Every libssh2 call for this session and its channels happens on `eventLoop`, so nothing needs a lock.
/// A connection is used once: when it ends (`closeFuture`), its owner makes a new one; listeners and counters live
/// in the owner (`HostTunnel`), so a session can be replaced under them.
public final class SSHConnection: @unchecked Sendable {
    public let settings: ConnectionSettings
    public let eventLoop: EventLoop
    private var logger: Logger
    private let counters: TunnelCounters

    private enum State {
        case idle, connecting, handshaking, authenticating, ready, disconnecting, closed
    }
    private var state = State.idle
    private var tcp: Channel?
    private var transport: SessionTransport?
    private var session: SSHSession?
    private var authenticator: PublicKeyAuthenticator?
    private var sessionInfo: SessionInfo?
    private var hostKeyType = "", hostKeyFingerprint = "", hostKeyStatus = ""
    private var setupDeadline: Scheduled<Void>?

    private var forwards: [Int: ForwardedConnection] = [:]
    private var nextForwardID = 0
    /// libssh2 runs one channel-open at a time per session, so opens wait here in arrival order.
    private var openQueue = CircularBuffer<ForwardedConnection>()
    private var openInFlight = false
    /// Channels being closed and freed (each may need a reply from the server).
    private var retiring: [SSHChannel] = []

    private var disconnectSent = false
    private var pumping = false
    private var pumpAgain = false

    private let readyPromise: EventLoopPromise<SessionInfo>
    private let closedPromise: EventLoopPromise<TunnelError?>
    private var closeWaiters: [EventLoopPromise<Void>] = []

    /// Bytes queued for the server above which we stop taking more from local clients.
    static let outboundHighWater = 1024 * 1024

    public init(settings: ConnectionSettings, eventLoop: EventLoop, counters: TunnelCounters, logger: Logger) {
        self.settings = settings
        self.eventLoop = eventLoop
        self.counters = counters
        var logger = logger
        logger[metadataKey: "tunnel"] = "\(settings.name)"
        logger[metadataKey: "peer"] = "\(settings.hostName):\(settings.port)"
        self.logger = logger
        self.readyPromise = eventLoop.makePromise()
        self.closedPromise = eventLoop.makePromise()
    }

    /// Completes when the session has ended, with the reason (nil for a requested close).
    public var closeFuture: EventLoopFuture<TunnelError?> { closedPromise.futureResult }

    public var isReady: Bool { state == .ready }

    // MARK: - Connect

    /// TCP connect, handshake, host-key check, authentication. Succeeds once forwards can be opened.
    public func connect() -> EventLoopFuture<SessionInfo> {
        eventLoop.execute { self.startConnecting() }
        return readyPromise.futureResult
    }

    private func startConnecting() {
        guard state == .idle else { return }
        state = .connecting
        let timeout = TimeAmount.seconds(settings.connectTimeoutSeconds)
        setupDeadline = eventLoop.scheduleTask(in: timeout) { [self] in
            fail(.timedOut("no SSH session with \(settings.peer) within \(settings.connectTimeoutSeconds) s"))
        }
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .connectTimeout(timeout)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ServerStreamHandler(connection: self))
                }
            }
            .connect(host: settings.hostName, port: settings.port)
            .whenComplete { [self] result in
                switch result {
                case .success(let channel): tcpConnected(channel)
                case .failure(let error):
                    fail(.connectFailed(host: settings.hostName, port: settings.port, reason: plainReason(error)))
                }
            }
    }

    private func tcpConnected(_ channel: Channel) {
        guard state == .connecting else {
            channel.close(promise: nil)
            return
        }
        tcp = channel
        let transport = SessionTransport(allocator: channel.allocator)
        self.transport = transport
        do {
            let session = try SSHSession(transport: transport)
            // An unreadable file is reported by checkHostKey; here it only costs the preferred order.
            let knownHosts = (try? HostKeyVerifier.loadKnownHosts(for: settings.hostKeyPolicy)) ?? KnownHosts()
            session.preferHostKeyAlgorithms(HostKeyVerifier.preferredAlgorithms(
                host: settings.hostName, port: settings.port, knownHosts: knownHosts))
            self.session = session
        } catch {
            fail(.ssh(error))
            return
        }
        authenticator = PublicKeyAuthenticator(settings: settings)
        state = .handshaking
        pump()
    }

    // MARK: - Forwards

    /// Take over an accepted local connection and open a `direct-tcpip` channel for it.
    func startForward(local: Channel, spec: ForwardSpec, handler: LocalClientHandler) {
        eventLoop.assertInEventLoop()
        nextForwardID += 1
        let forward = ForwardedConnection(id: nextForwardID, spec: spec, local: local, counters: counters, logger: logger)
        handler.forward = forward
        handler.connection = self
        guard acceptsClients else {
            forward.close(.abort)
            return
        }
        // A client that arrives while the session is being set up waits in the queue instead of being turned away;
        // the wait is bounded by the connect timeout, after which `fail` closes it with the reason logged.
        forwards[forward.id] = forward
        openQueue.append(forward)
        if state == .ready { pump() } else { logger.debug("client waits for the SSH session") }
    }

    /// Whether new local clients can be handed to this session (now or once it is up).
    var acceptsClients: Bool { state != .disconnecting && state != .closed }

    // MARK: - Close

    /// End the session politely: close every forward, free every channel, send SSH_MSG_DISCONNECT, close TCP.
    /// Bounded: after `deadline` the connection is torn down regardless.
    public func close(deadline: TimeAmount = .seconds(2)) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute { [self] in
            closeWaiters.append(promise)
            switch state {
            case .closed:
                finishClose()
            case .ready:
                state = .disconnecting
                for forward in forwards.values { forward.close(.abort) }
                eventLoop.scheduleTask(in: deadline) { [self] in fail(nil) }
                pump()
            default:
                fail(nil)
            }
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
        guard state != .closed else { return }
        let wasReady = state == .ready || state == .disconnecting
        state = .closed
        setupDeadline?.cancel()
        // The owner (HostTunnel's user) reports the reason from closeFuture; here it is only traced.
        if let error { logger.debug("session ended: \(error)", metadata: ["was-ready": "\(wasReady)"]) }
        session?.invalidate()
        for forward in forwards.values { forward.close(.abort) }
        forwards.removeAll()
        openQueue.removeAll()
        retiring.removeAll()
        authenticator = nil
        tcp?.close(promise: nil)
        tcp = nil
        session = nil
        readyPromise.fail(error ?? TunnelError.stopped)
        closedPromise.succeed(error)
        finishClose()
    }

    // MARK: - The pump

    /// Run every pending libssh2 step until each would block; then hand libssh2's output to NIO.
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
                fail(error)
                return
            } catch let error as SSH2Error {
                fail(transport?.serverClosed == true ? .connectionLost(reason: "the server closed the connection") : .ssh(error))
                return
            } catch {
                fail(.connectionLost(reason: "\(error)"))
                return
            }
            flushToServer()
        } while pumpAgain
    }

    private var outboundCongested: Bool {
        guard let tcp, let transport else { return true }
        return !tcp.isWritable || transport.pendingOutbound > Self.outboundHighWater
    }

    private func advance() throws {
        guard let session else { return }
        switch state {
        case .handshaking:
            guard case .done = try session.handshake() else { return }
            try checkHostKey(session)
            state = .authenticating
            pumpAgain = true
        case .authenticating:
            guard let authenticator else { return }
            guard let identity = try authenticator.step(session) else { return }
            becomeReady(identity: identity)
        case .ready:
            try driveOpens(session)
            for forward in forwards.values {
                try forward.step(outboundCongested: outboundCongested)
                if forward.isClosed { retire(forward) }
            }
            driveRetiring()
        case .disconnecting:
            for forward in forwards.values { retire(forward) }
            // An open already handed to libssh2 must be driven to its end; the others never started.
            while openQueue.count > (openInFlight ? 1 : 0) { openQueue.removeLast() }
            if openInFlight { try driveOpens(session) }
            driveRetiring()
            guard retiring.isEmpty, !openInFlight else { return }
            guard !disconnectSent else { return }
            guard case .done = session.disconnect(reason: "tunnel stopping") else { return }
            disconnectSent = true
            flushToServer()
            // Close once the disconnect message has left: an empty write completes after every earlier one.
            guard let tcp else { return fail(nil) }
            tcp.writeAndFlush(tcp.allocator.buffer(capacity: 0)).whenComplete { [self] _ in fail(nil) }
        case .idle, .connecting, .closed:
            return
        }
    }

    private func checkHostKey(_ session: SSHSession) throws {
        guard let key = session.hostKey else {
            throw TunnelError.hostKeyRefused(.noHostKey(name: KnownHosts.lookupName(host: settings.hostName, port: settings.port)))
        }
        hostKeyType = key.typeName
        hostKeyFingerprint = Fingerprint.sha256(key.blob)
        // File I/O on the loop for now (load, and the append of `record`); to move off the loop.
        let policy = settings.hostKeyPolicy
        var decision: HostKeyDecision
        do throws(HostKeyRefusal) {
            decision = HostKeyVerifier.verify(host: settings.hostName, port: settings.port, keyType: key.typeName,
                                              key: key.blob, policy: policy, knownHosts: try HostKeyVerifier.loadKnownHosts(for: policy))
        } catch {
            decision = .refused(error)
        }
        if case .recordNew(let path) = decision {
            decision = HostKeyVerifier.record(host: settings.hostName, port: settings.port, keyType: key.typeName,
                                              key: key.blob, in: path, policy: policy)
        }
        let lookupName = KnownHosts.lookupName(host: settings.hostName, port: settings.port)
        if settings.hostKeyPolicy.mode == .off {
            logger.warning("StrictHostKeyChecking no: an unknown host key for \(lookupName) would be accepted without checking (changed keys are still refused)")
        }
        switch decision {
        case .trusted(let entry):
            hostKeyStatus = "known_hosts \(entry.file):\(entry.line)"
        case .recordedNew(let path), .recordNew(let path):  // `record` above turned .recordNew into one of the others
            hostKeyStatus = "new host key recorded in \(path)"
            logger.notice("new host key \(key.typeName) \(hostKeyFingerprint) for \(lookupName) recorded in \(path) (StrictHostKeyChecking \(settings.hostKeyPolicy.mode.rawValue))")
        case .unchecked:
            hostKeyStatus = "not checked"
            logger.warning("host key \(key.typeName) \(hostKeyFingerprint) for \(lookupName) NOT checked and not recorded: anyone on the path could pose as this server")
        case .refused(let refusal):
            throw TunnelError.hostKeyRefused(refusal)
        }
    }

    private func becomeReady(identity: String) {
        setupDeadline?.cancel()
        setupDeadline = nil
        authenticator = nil
        state = .ready
        counters.sessionEstablished()
        let info = SessionInfo(hostKeyType: hostKeyType, hostKeyFingerprint: hostKeyFingerprint,
                               hostKeyStatus: hostKeyStatus, identityFile: identity)
        sessionInfo = info
        readyPromise.succeed(info)
        pumpAgain = true
    }

    private func driveOpens(_ session: SSHSession) throws {
        while let forward = openQueue.first {
            if forward.isClosed && !openInFlight {
                openQueue.removeFirst()
                continue
            }
            forward.openStarted()
            openInFlight = true
            let step: SSHStep<SSHChannel>
            do {
                step = try session.openDirectTCPIP(host: forward.spec.targetHost, port: forward.spec.targetPort,
                                                   originHost: forward.originHost, originPort: forward.originPort)
            } catch {
                openInFlight = false
                openQueue.removeFirst()
                if error.isSessionFatal { throw error }
                forward.openFailed(error)
                continue
            }
            guard case .done(let channel) = step else { return }
            openInFlight = false
            openQueue.removeFirst()
            if !forward.channelOpened(channel) { retiring.append(channel) }
        }
    }

    private func retire(_ forward: ForwardedConnection) {
        if let channel = forward.takeChannelToRetire() { retiring.append(channel) }
        if forward.isClosed { forwards[forward.id] = nil }
    }

    private func driveRetiring() {
        retiring.removeAll { channel in
            if case .done = channel.free() { return true }
            return false
        }
    }

    private func flushToServer() {
        guard let tcp, let transport, let bytes = transport.takeOutbound() else { return }
        tcp.writeAndFlush(bytes, promise: nil)
    }

    // MARK: - Events from the server socket

    fileprivate func serverSent(_ buffer: inout ByteBuffer) {
        transport?.append(fromServer: &buffer)
        pump()
    }

    fileprivate func serverClosed() {
        guard state != .closed else { return }
        transport?.serverClosed = true
        if state == .disconnecting {
            fail(nil)
            return
        }
        pump()
        fail(.connectionLost(reason: "the server closed the connection"))
    }

    fileprivate func serverError(_ error: Error) {
        fail(.connectionLost(reason: plainReason(error)))
    }
}

/// The handler on the TCP channel to the SSH server: feeds bytes and events to the connection.
private final class ServerStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let connection: SSHConnection

    init(connection: SSHConnection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        connection.serverSent(&buffer)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { connection.pump() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.serverClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        connection.serverError(error)
        context.close(promise: nil)
    }
}

/// Turn NIO and POSIX errors into the words a user expects ("connection refused").
func plainReason(_ error: Error) -> String {
    if let ioError = error as? IOError {
        return String(cString: strerror(ioError.errnoCode)).lowercased()
    }
    if let connectError = error as? NIOConnectionError {
        if let first = connectError.connectionErrors.first { return plainReason(first.error) }
        if connectError.dnsAAAAError != nil || connectError.dnsAError != nil { return "cannot resolve host name" }
    }
    if error is ChannelError, case ChannelError.connectTimeout = error as! ChannelError { return "connection timed out" }
    return "\(error)"
}
