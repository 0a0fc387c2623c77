import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix

/// Serves the control socket: a Unix-domain stream socket (mode 0600, in a 0700 directory), one JSON request per
/// line, one JSON reply per line (`ControlProtocol`). A peer whose uid is not ours is told so and closed: the
/// socket's mode already keeps other users out, and checking the peer's credentials also covers a directory someone
/// made wider, or root-owned processes we did not mean to serve.
final class ControlServer: Sendable {
    typealias Handling = @Sendable (ControlCommand) async -> ControlReply

    let path: String
    private let channel: Channel
    private let logger: Logger

    private init(path: String, channel: Channel, logger: Logger) {
        self.path = path
        self.channel = channel
        self.logger = logger
    }

    /// Claim `path`: refuse if another instance answers there, remove a stale socket left by one that died, bind,
    /// narrow the mode to 0600. Blocking checks run before any session exists (the caller is not on an event loop).
    static func start(path: String, group: EventLoopGroup, logger: Logger, handle: @escaping Handling) async throws(ControlSocketError) -> ControlServer {
        try ControlSocketPath.prepareDirectory(for: path)
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw .bind(path: path, reason: "exists and is not a socket; not replacing it")
            }
            switch await ControlClient.probe(path: path, group: group) {
            case .answering(let pid):
                throw .alreadyRunning(path: path, pid: pid)
            case .stale:
                logger.notice("removed a stale control socket \(path) (left by a tunnel that did not stop cleanly)")
                unlink(path)
            }
        }
        let oldMask = umask(0o177)  // the socket is created 0600: never open to others, not even for a moment
        defer { umask(oldMask) }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .childChannelInitializer { child in
                ControlServer.checkPeer(child, logger: logger).flatMapThrowing { allowed in
                    let sync = child.pipeline.syncOperations
                    // Bounded: a client that never sends a newline is cut off, not buffered without end.
                    try sync.addHandler(ByteToMessageHandler(LineBasedFrameDecoder(),
                                                             maximumBufferSize: ControlProtocol.maximumRequestBytes))
                    guard allowed else { return try sync.addHandler(RefusingHandler()) }
                    try sync.addHandler(ControlRequestHandler(handle: handle, logger: logger))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false).get()
        } catch {
            throw .bind(path: path, reason: "\(error)")
        }
        chmod(path, 0o600)
        return ControlServer(path: path, channel: channel, logger: logger)
    }

    /// Stop accepting and remove the socket file (connections being served finish on their own).
    func close() async {
        try? await channel.close()
        unlink(path)
    }

    /// Whether the peer runs as our user (SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS).
    private static func checkPeer(_ channel: Channel, logger: Logger) -> EventLoopFuture<Bool> {
        guard let provider = channel as? SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(false) }
        #if os(Linux)
        let credentials: EventLoopFuture<LinuxPeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return credentials.map { peer in
            if peer.uid == getuid() { return true }
            logger.warning("control socket: refused a client running as uid \(peer.uid) (pid \(peer.pid))")
            return false
        }.recover { _ in false }
        #elseif canImport(Darwin)
        let credentials: EventLoopFuture<xucred> = provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_LOCAL),
                                                                                  name: SocketOptionName(LOCAL_PEERCRED))
        return credentials.map { peer in
            if peer.cr_uid == getuid() { return true }
            logger.warning("control socket: refused a client running as uid \(peer.cr_uid)")
            return false
        }.recover { _ in false }
        #else
        return channel.eventLoop.makeSucceededFuture(false)
        #endif
    }
}

/// Answers another user's request with a refusal. It reads the request before closing: closing a Unix socket with
/// unread input resets the connection, and the client would see that instead of the reason.
private final class RefusingHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let refusal = ControlReply.failure("refused: the control socket serves only uid \(getuid())").encodedLine()
        let channel = context.channel
        channel.writeAndFlush(ByteBuffer(bytes: refusal)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelActive(context: ChannelHandlerContext) {
        // A client that sends nothing is not kept.
        let channel = context.channel
        context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        context.fireChannelActive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// One control connection: each line is a request, answered in order (one at a time: a reload finishes before the
/// next request on the same connection is answered).
private final class ControlRequestHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let handle: ControlServer.Handling
    private let logger: Logger
    /// The reply being worked on; the next request's starts after it is written.
    private var lastReply: EventLoopFuture<Void>?
    /// Requests read and not answered yet. Bounded: a client that writes requests and never reads the replies
    /// would otherwise queue work and replies without end.
    private var unanswered = 0
    static let maximumUnanswered = 32

    init(handle: @escaping ControlServer.Handling, logger: Logger) {
        self.handle = handle
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        let channel = context.channel
        guard unanswered < Self.maximumUnanswered else {
            logger.warning("control client sent \(Self.maximumUnanswered) requests without reading the replies; closing it")
            context.close(promise: nil)
            return
        }
        unanswered += 1
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let decoded = ControlRequest.decode(line.readableBytesView)
        let handle = self.handle
        let previous = lastReply ?? eventLoop.makeSucceededVoidFuture()
        lastReply = previous.flatMap {
            let reply: EventLoopFuture<ControlReply>
            switch decoded {
            case .failure(let error):
                reply = eventLoop.makeSucceededFuture(.failure(error.description))
            case .success(let command):
                // Answered off the loop: a reload reads files, stops and starts tunnels.
                let promise = eventLoop.makePromise(of: ControlReply.self)
                promise.completeWithTask { await handle(command) }
                reply = promise.futureResult
            }
            return reply.flatMap { channel.writeAndFlush(ByteBuffer(bytes: $0.encodedLine())) }.recover { _ in }
                .always { _ in handler.value.unanswered -= 1 }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is ByteToMessageDecoderError.PayloadTooLargeError {
            let channel = context.channel
            let refusal = ControlReply.failure(ControlRequestError.tooLong.description).encodedLine()
            channel.writeAndFlush(ByteBuffer(bytes: refusal)).whenComplete { _ in channel.close(promise: nil) }
            return
        }
        // A reset: this client only.
        context.close(promise: nil)
    }
}

#if os(Linux)
/// Linux's `struct ucred` (pid, uid, gid), which Glibc's Swift module does not export (it needs _GNU_SOURCE).
private struct LinuxPeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
#endif
