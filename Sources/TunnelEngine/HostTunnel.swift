import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TunnelConfig

/// Everything one `Host` block brings up: its local listeners, its counters, and the SSH session they use.
///
/// Listeners and counters belong here, not to the session, so a session can be replaced (reconnect) while the
/// listeners stay bound and the counters keep counting. The mutable state lives on `eventLoop`, in a box that
/// checks it is only touched there; what other threads read (bound addresses, the session's end) is locked.
public final class HostTunnel: Sendable {
    public let settings: ConnectionSettings
    public let localForwards: [ForwardSpec]
    public let eventLoop: EventLoop
    public let counters = TunnelCounters()
    private let logger: Logger

    /// State confined to `eventLoop`.
    private final class LoopState {
        var listeners: [Channel] = []
        /// Unix-domain socket files we created, removed on stop.
        var socketFiles: [String] = []
        var connection: SSHConnection?
        var stopped = false
    }
    private let state: NIOLoopBoundBox<LoopState>
    private let published = NIOLockedValueBox(Published())
    private struct Published {
        var boundAddresses: [String] = []
        var sessionEnded: EventLoopFuture<TunnelError?>?
        var remoteForwards: [RemoteForwardStatus] = []
    }

    public init(settings: ConnectionSettings, localForwards: [ForwardSpec], eventLoop: EventLoop, logger: Logger) {
        self.settings = settings
        self.localForwards = localForwards
        self.eventLoop = eventLoop
        var logger = logger
        logger[metadataKey: "tunnel"] = "\(settings.name)"
        logger[metadataKey: "peer"] = "\(settings.hostName):\(settings.port)"
        self.logger = logger
        self.state = NIOLoopBoundBox.makeBoxSendingValue(LoopState(), eventLoop: eventLoop)
        published.withLockedValue { $0.remoteForwards = settings.remoteForwards.map { RemoteForwardStatus(forward: $0, state: .pending) } }
    }

    public convenience init(host: HostConfig, eventLoop: EventLoop, logger: Logger) {
        self.init(settings: ConnectionSettings(host), localForwards: host.localForwards, eventLoop: eventLoop, logger: logger)
    }

    /// The addresses actually bound, e.g. "127.0.0.1:8080" (port 0 in the config becomes the real port here).
    public var boundAddresses: [String] { published.withLockedValue { $0.boundAddresses } }

    /// Each `RemoteForward` of the current session: pending, listening (on which port: the server's choice for
    /// `RemoteForward 0`) or refused (why).
    public var remoteForwardStatus: [RemoteForwardStatus] { published.withLockedValue { $0.remoteForwards } }

    /// Completes when the current session ends, with the reason (nil after `stop()`).
    public var sessionEnded: EventLoopFuture<TunnelError?>? { published.withLockedValue { $0.sessionEnded } }

    // MARK: - Start and stop

    /// Bind every listener, then open the SSH session. Fails (and unbinds) if any listener cannot be bound or the
    /// session cannot be set up.
    public func start() async throws -> SessionInfo {
        do {
            // The session object exists before the first listener does, so a client accepted at once is queued
            // for it instead of finding no session and being turned away.
            try await eventLoop.submit {
                let connection = SSHConnection(settings: self.settings, eventLoop: self.eventLoop,
                                               counters: self.counters, logger: self.logger)
                self.state.value.connection = connection
                self.published.withLockedValue { $0.sessionEnded = connection.closeFuture }
                // [remote forwards] Status for `remoteForwardStatus`, from whichever session is current.
                connection.remoteForwards.onChange = { [published = self.published] status in published.withLockedValue { $0.remoteForwards = status } }
            }.get()
            for spec in localForwards {
                try await bind(spec)
            }
            return try await eventLoop.flatSubmit { () -> EventLoopFuture<SessionInfo> in
                guard let connection = self.state.value.connection, !self.state.value.stopped else {
                    return self.eventLoop.makeFailedFuture(TunnelError.stopped)
                }
                return connection.connect()
            }.get()
        } catch {
            await stop()
            throw error
        }
    }

    /// Close listeners, forwarded connections and the session. Idempotent, and safe while `start()` is still
    /// setting the session up (it then fails with `TunnelError.stopped`).
    public func stop() async {
        // If the event loop is already gone there is nothing left to stop.
        try? await eventLoop.flatSubmit { () -> EventLoopFuture<Void> in
            let state = self.state.value
            state.stopped = true
            let closing = state.listeners.map { $0.close() } + [state.connection?.close()].compactMap { $0 }
            state.listeners = []
            let files = state.socketFiles
            state.socketFiles = []
            return EventLoopFuture.andAllComplete(closing, on: self.eventLoop).map {
                for path in files { unlink(path) }
            }
        }.get()
    }

    /// One line per forward, "127.0.0.1:8080 -> 127.0.0.1:80", then "remote localhost:9000 -> 127.0.0.1:3000",
    /// with the server's port once it listens.
    public var forwardDescriptions: [String] {
        localForwards.map(\.forwardText) + remoteForwardStatus.map(\.description)
    }

    // MARK: - Listeners

    private func bind(_ spec: ForwardSpec) async throws {
        if case .unixSocket(let path) = spec.listener { return try await bindSocket(spec, path: path) }
        let addresses = bindAddresses(for: spec)
        var boundOne = false
        for (index, host) in addresses.enumerated() {
            let required = index == 0
            do {
                let channel = try await makeServerBootstrap(spec: spec, tcp: true, v6Only: host.contains(":"))
                    .bind(host: host, port: spec.listenPort).get()
                let local = channel.localAddress.map(describe) ?? "\(host):\(spec.listenPort)"
                try await eventLoop.submit {
                    self.state.value.listeners.append(channel)
                    self.published.withLockedValue { $0.boundAddresses.append(local) }
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
    private func bindSocket(_ spec: ForwardSpec, path: String) async throws {
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
            self.state.value.listeners.append(channel)
            self.state.value.socketFiles.append(path)
            self.published.withLockedValue { $0.boundAddresses.append(path) }
        }.get()
    }

    private func bindAddresses(for spec: ForwardSpec) -> [String] {
        switch spec.bind {
        case .loopback: return ["127.0.0.1", "::1"]
        case .any: return ["0.0.0.0", "::"]
        case .address(let address): return [address]
        }
    }

    private func makeServerBootstrap(spec: ForwardSpec, tcp: Bool, v6Only: Bool = false) -> ServerBootstrap {
        var bootstrap = ServerBootstrap(group: eventLoop, childGroup: eventLoop)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 128 * 1024, high: 512 * 1024))
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 16 * 1024, maximum: 128 * 1024))
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(LocalClientHandler(tunnel: self, spec: spec))
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

    /// A local client connected: pair it with a channel to the forward's target, or turn it away with a log line
    /// saying why.
    fileprivate func accepted(_ client: Channel, spec: ForwardSpec, handler: LocalClientHandler) {
        counters.connectionAccepted()
        guard !state.value.stopped, let connection = state.value.connection, connection.acceptsClients else {
            counters.connectionEnded()
            logger.warning("\(spec.listenText): refused a client: the SSH session is not up")
            client.close(promise: nil)
            return
        }
        let forward = connection.makeForward(label: spec.forwardText)
        forward.attach(client: client)
        handler.attach(forward, connection)
        let target: ChannelTarget
        switch spec.target {
        case .tcp(let host, let port): target = .tcp(host: host, port: port)
        case .unixSocket(let path): target = .unixSocket(path: path)
        }
        connection.open(forward, to: target) { [logger = forward.logger, counters] result in
            switch result {
            case .success:
                break  // the session steps it from here: it starts reading the client
            case .failure(let failure):
                // A connection already closed (the session ended, tunnel stopping) is not the server's refusal.
                guard !forward.isClosed else { return }
                counters.recordOpenFailure()
                logger.warning("\(forward.label): the server could not open the connection: \(failure.message)")
                forward.close(.abort)
            }
        }
    }
}

/// The handler on an accepted client socket: feeds its bytes and events to its `ForwardedConnection`, and asks the
/// session to step that one connection.
final class LocalClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let tunnel: HostTunnel
    private let spec: ForwardSpec
    private var forward: ForwardedConnection?
    private var connection: SSHConnection?

    init(tunnel: HostTunnel, spec: ForwardSpec) {
        self.tunnel = tunnel
        self.spec = spec
    }

    func attach(_ forward: ForwardedConnection, _ connection: SSHConnection) {
        self.forward = forward
        self.connection = connection
    }

    func channelActive(context: ChannelHandlerContext) {
        tunnel.accepted(context.channel, spec: spec, handler: self)
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
        if let forward, let connection {
            forward.clientClosed()
            connection.clientEvent(forward)
        }
        forward = nil
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset from the client: close this one connection; the tunnel stays up.
        context.close(promise: nil)
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
