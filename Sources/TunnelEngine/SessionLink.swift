import NIOCore
import NIOPosix

/// What carries one SSH session's bytes to and from the server. The session does not care what it is: a TCP
/// connection today (`TCPLink`), a channel of another session on the same event loop for ProxyJump later.
/// Every call happens on the session's event loop.
protocol SessionLink: AnyObject {
    /// Send bytes to the server (flushed at once).
    func send(_ bytes: ByteBuffer)
    /// Whether the link takes more without queueing (false: wait for `SessionLinkEvents.linkWritable`).
    var isWritable: Bool { get }
    /// Completes once every byte sent so far has left (used to close only after SSH_MSG_DISCONNECT is out).
    func flushed() -> EventLoopFuture<Void>
    /// Close the link. Idempotent; `linkClosed` follows.
    func close()
}

/// What a link reports to its session, on the session's event loop.
protocol SessionLinkEvents: AnyObject {
    /// Bytes from the server; more may follow in the same burst.
    func linkReceived(_ bytes: inout ByteBuffer)
    /// The end of a burst of `linkReceived` calls: the moment to let libssh2 parse them, once.
    func linkReadComplete()
    func linkWritable()
    /// The link ended: `reason` nil when the server closed it, else what broke.
    func linkClosed(reason: String?)
}

/// A session's link over a TCP connection made with NIO (or any other NIO stream channel fed by a `LinkHandler`:
/// `JumpLink` uses one end of a socket pair).
final class TCPLink: SessionLink, Sendable {
    private let channel: Channel

    init(channel: Channel) { self.channel = channel }

    /// Connect to `host:port` on `eventLoop`; events go to `events` from the moment the connection exists.
    static func connect(host: String, port: Int, timeout: TimeAmount, on eventLoop: EventLoop,
                        events: SessionLinkEvents) -> EventLoopFuture<TCPLink> {
        // The handler holds its receiver weakly, so a failed connect leaves nothing behind. It is made here, on the
        // loop, and handed to the initializer (which runs on the same loop) in a box that checks that.
        let handler = NIOLoopBound(LinkHandler(events: events), eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler.value) }
            }
            .connect(host: host, port: port)
            .map { TCPLink(channel: $0) }
    }

    func send(_ bytes: ByteBuffer) { channel.writeAndFlush(bytes, promise: nil) }

    var isWritable: Bool { channel.isWritable }

    func flushed() -> EventLoopFuture<Void> {
        // An empty write completes after every earlier one.
        channel.writeAndFlush(channel.allocator.buffer(capacity: 0))
    }

    func close() { channel.close(promise: nil) }
}

/// Feeds a TCP channel's bytes and events to the session.
final class LinkHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private weak var events: SessionLinkEvents?
    private var closed = false

    init(events: SessionLinkEvents) { self.events = events }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        events?.linkReceived(&buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        events?.linkReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { events?.linkWritable() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        report(nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        report(plainReason(error))
        context.close(promise: nil)
    }

    private func report(_ reason: String?) {
        guard !closed else { return }
        closed = true
        events?.linkClosed(reason: reason)
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
    if let channelError = error as? ChannelError, case .connectTimeout = channelError { return "connection timed out" }
    return "\(error)"
}
