import Logging
import NIOCore
import NIOHTTP1
import TunnelConfig

/// The handler on a client socket of a `DynamicForward` proxy port: the proxy handshake is the connection's
/// pre-open state (as OpenSSH's `channel_pre_dynamic`). It reads the client's request (SOCKS through
/// `SOCKSServerHandshake`; HTTP through NIOHTTP1's decoder and `HTTPProxyRequestHandler`, put in front of this
/// handler for the handshake), asks for a channel to the target through `HostTunnel.openForward`, answers the
/// client once the server has answered, and from then on is the same client+channel pair as a local forward.
///
/// A client that sends garbage, too much, or not enough within the handshake timeout (10 s by default) is closed
/// alone, with a debug line saying why.
final class ProxyClientHandler: ChannelInboundHandler, ForwardClientHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        /// Nothing read yet: the first byte says SOCKS or HTTP.
        case start
        case socks(SOCKSServerHandshake, input: ByteBuffer)
        /// The HTTP handlers in front of this one read the request; they send an `HTTPProxyEvent`.
        case http
        /// The target is known and its channel asked for; client bytes wait in the forwarded connection.
        case opening(Reply)
        /// The channel is open: bytes move as in a local forward.
        case forwarding
        /// Answered (an HTTP error, the PAC file) and closing: what the client still sends is read and dropped.
        case lingering
        case closed
    }

    /// How the client is answered once the server has.
    private enum Reply {
        case socks(SOCKSServerHandshake)
        case httpTunnel(HTTPVersion)
        /// A plain HTTP request: success is the origin's own answer; only failures are ours.
        case httpForward(HTTPVersion)
    }

    private let tunnel: HostTunnel
    private let listenText: String
    private let forwardIndex: Int
    private let credentials: ProxyCredentials?
    private let handshakeTimeout: TimeAmount
    private var logger: Logger
    private var phase = Phase.start
    private var deadline: Scheduled<Void>?
    private var forward: ForwardedConnection?
    private var connection: SSHConnection?
    /// Input that arrives before the forwarded connection exists.
    private var early = ClientInputBeforePairing()
    /// While lingering: the write of our answer.
    private var lingerWrite: EventLoopFuture<Void>?

    init(tunnel: HostTunnel, listenText: String, forwardIndex: Int, credentials: ProxyCredentials?, handshakeTimeout: TimeAmount,
         logger: Logger) {
        self.tunnel = tunnel
        self.listenText = listenText
        self.forwardIndex = forwardIndex
        self.credentials = credentials
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
    }

    func attach(_ forward: ForwardedConnection, _ connection: SSHConnection) {
        self.forward = forward
        self.connection = connection
        early.release(to: forward)
    }

    /// Client bytes once the request is known: to the forwarded connection, or held until it exists.
    private func keep(_ buffer: inout ByteBuffer) {
        if let forward {
            forward.clientRead(&buffer)
        } else {
            early.hold(&buffer)
        }
    }

    // MARK: - Handshake

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "client"] = "\(context.channel.remoteAddress.map(describe) ?? "?")"
        let channel = context.channel
        let timeout = handshakeTimeout
        deadline = context.eventLoop.scheduleTask(in: timeout) { [logger] in
            logger.debug("proxy client closed: no complete request within \(Double(timeout.nanoseconds) / 1e9) s")
            channel.close(promise: nil)
        }
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch phase {
        case .start:
            guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
            if ProxyProtocol(firstByte: first) == .http {
                startHTTP(context: context, firstBytes: buffer)
            } else {
                phase = .socks(SOCKSServerHandshake(credentials: credentials), input: buffer)
                socksProgress(context: context)
            }
        case .socks(let handshake, var input):
            input.writeBuffer(&buffer)
            phase = .socks(handshake, input: input)
            socksProgress(context: context)
        case .http:
            break  // nothing reaches here before the HTTP handlers have decided
        case .opening, .forwarding:
            keep(&buffer)
        case .lingering, .closed:
            break
        }
    }

    private func socksProgress(context: ChannelHandlerContext) {
        guard case .socks(var handshake, var input) = phase else { return }
        while true {
            let step = handshake.next(&input)
            switch step {
            case .needMore:
                phase = .socks(handshake, input: input)
                return
            case .reply(let bytes):
                context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            case .connect(let target):
                let kind: String
                switch handshake.version {
                case .v4: kind = "socks4"
                case .v4a: kind = "socks4a"
                default: kind = "socks5"
                }
                open(target, kind: kind, reply: .socks(handshake), firstBytes: input, context: context)
                return
            case .refuse(let reply, let reason):
                refuse(context: context, reply: reply, reason: reason)
                return
            }
        }
    }

    private func startHTTP(context: ChannelHandlerContext, firstBytes: ByteBuffer) {
        phase = .http
        do {
            let decoder = ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes,
                                                                  informationalResponseStrategy: .drop,
                                                                  limitConfiguration: HTTPProxyRequestHandler.decoderLimits))
            let operations = context.pipeline.syncOperations
            try operations.addHandler(decoder, position: .before(self))
            try operations.addHandler(HTTPProxyRequestHandler(credentials: credentials, logger: logger), position: .before(self))
        } catch {
            return refuse(context: context, reply: nil, reason: "HTTP parser not set up: \(error)")
        }
        // From the head of the pipeline, so the bytes already read go through the decoder just added.
        context.pipeline.syncOperations.fireChannelRead(NIOAny(firstBytes))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? HTTPProxyEvent {
            switch event {
            case .tunnel(let target, let version):
                open(target, kind: "http connect", reply: .httpTunnel(version), firstBytes: nil, context: context)
            case .forward(let target, let version):
                open(target, kind: "http", reply: .httpForward(version), firstBytes: nil, context: context)
            }
            return
        }
        if let ended = event as? ProxyHandshakeEnded {
            answerAndLinger(ended.answer, context: context)
            return
        }
        if case ChannelEvent.inputClosed = event {
            switch phase {
            case .start, .socks, .http:
                refuse(context: context, reply: nil, reason: "the client closed its side mid-handshake")
            case .opening, .forwarding:
                if let forward, let connection {
                    forward.clientSentEOF()
                    connection.clientEvent(forward)
                } else {
                    early.holdEOF()
                }
            case .lingering:
                // The client is done too: close once our answer is out.
                let channel = context.channel
                if let lingerWrite { lingerWrite.whenComplete { _ in channel.close(promise: nil) } } else { channel.close(promise: nil) }
            case .closed:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// How long a client that was answered and is still sending is read from before the connection closes.
    static let lingerLimit = TimeAmount.seconds(2)

    /// Write `answer`, shut our side, and read (and drop) whatever the client still sends until it closes or
    /// `lingerLimit` passes. Closing at once with unread input would send a reset, which can make the client lose
    /// the answer (a 407 or a 431 that arrives while the client is still sending its request).
    private func answerAndLinger(_ answer: ByteBuffer, context: ChannelHandlerContext) {
        endHandshake()
        phase = .lingering
        let channel = context.channel
        // The HTTP handlers stay (removing them while the decoder is mid-parse would hand this handler parsed
        // parts): they drop whatever follows, and the parse errors it causes are ignored here (`errorCaught`).
        let written = context.writeAndFlush(wrapOutboundOut(answer))
        lingerWrite = written
        written.whenComplete { _ in channel.close(mode: .output, promise: nil) }
        deadline = context.eventLoop.scheduleTask(in: Self.lingerLimit) { channel.close(promise: nil) }
        context.read()
    }

    private func endHandshake() {
        deadline?.cancel()
        deadline = nil
    }

    private func refuse(context: ChannelHandlerContext, reply: ByteBuffer?, reason: String) {
        endHandshake()
        phase = .closed
        logger.debug("proxy client closed: \(reason)")
        let channel = context.channel
        if let reply {
            context.writeAndFlush(wrapOutboundOut(reply)).whenComplete { _ in channel.close(promise: nil) }
        } else {
            channel.close(promise: nil)
        }
    }

    // MARK: - Open, answer, forward

    private func open(_ target: ProxyTarget, kind: String, reply: Reply, firstBytes: ByteBuffer?, context: ChannelHandlerContext) {
        endHandshake()
        phase = .opening(reply)
        let client = context.channel
        if var firstBytes, firstBytes.readableBytes > 0 { keep(&firstBytes) }
        let label = "\(listenText) -> \(target) (\(kind))"
        tunnel.openForward(client: client, handler: self, label: label, listenText: listenText, forwardIndex: forwardIndex,
                           target: .tcp(host: target.host, port: target.port)) { [self] result in
            self.opened(result, target: target, client: client)
        }
    }

    private func opened(_ result: Result<ForwardedConnection, ChannelOpenFailure>, target: ProxyTarget, client: Channel) {
        guard case .opening(let reply) = phase else { return }
        switch result {
        case .success(let forward):
            phase = .forwarding
            switch reply {
            case .socks(let handshake): forward.writeToClient(handshake.reply(for: nil))
            case .httpTunnel(let version): forward.writeToClient(HTTPProxyWire.connectEstablished(version: version))
            case .httpForward: break
            }
        case .failure(let failure):
            phase = .closed
            let kind = ProxyOpenFailure(failure)
            let answer: ByteBuffer
            switch reply {
            case .socks(let handshake): answer = handshake.reply(for: kind)
            case .httpTunnel(let version), .httpForward(let version):
                answer = HTTPProxyWire.openFailed(kind, target: target, detail: failure.message, version: version)
            }
            let forward = self.forward
            if let forward {
                // A target that cannot be reached is the client's business, not a fault of the tunnel: info.
                forward.logger.info("\(forward.label): the server could not open the connection: \(failure.message)")
            }  // else it never got to the server: HostTunnel said why
            client.writeAndFlush(answer).whenComplete { _ in
                if let forward { forward.close(.abort) } else { client.close(promise: nil) }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch phase {
        case .start, .socks, .http:
            context.read()  // the handshake reads until it has a request
        case .lingering:
            context.read()  // dropped, until the client's EOF or the limit
        case .opening, .forwarding:
            if let forward, let connection {
                forward.clientReadComplete()
                connection.clientEvent(forward)
            }
        case .closed:
            break
        }
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let forward, let connection { connection.clientEvent(forward) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        endHandshake()
        if case .start = phase { logger.debug("proxy client closed: it left before sending anything") }
        if case .socks = phase { logger.debug("proxy client closed: it left mid-handshake") }
        let wasOpening: Bool
        if case .opening = phase { wasOpening = true } else { wasOpening = false }
        phase = .closed
        if let forward, let connection {
            forward.clientClosed()
            connection.clientEvent(forward)
        } else if wasOpening {
            tunnel.waitingClientClosed(context.channel)
        }
        forward = nil
        connection = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // While lingering the decoder reports what it makes of the dropped bytes; only a socket error ends it early.
        if case .lingering = phase, !(error is IOError) { return }
        logger.debug("proxy client closed: \(error)")
        context.close(promise: nil)
    }
}
