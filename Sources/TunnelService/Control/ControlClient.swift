import Foundation
import NIOCore
import NIOExtras
import NIOPosix

/// The client side of the control socket, for `tunnel status/down/reload` and for `tunnel up`'s check whether
/// another instance already answers.
public enum ControlClient {
    /// Send one request and wait for its reply line.
    public static func send(_ command: ControlCommand, path: String, group: EventLoopGroup,
                            timeout: TimeAmount = .seconds(60)) async throws(ControlSocketError) -> ControlReply {
        let line = try await exchange(ControlRequest(command).encodedLine(), path: path, group: group, timeout: timeout)
        do {
            return try ControlReply.decode(line)
        } catch {
            throw .badReply(String(decoding: line.prefix(200), as: UTF8.self))
        }
    }

    enum Probe: Equatable {
        /// Someone answers: a running `tunnel up` (its pid when it said).
        case answering(pid: Int32?)
        /// Nothing listens (connection refused): a socket left by a process that is gone.
        case stale
    }

    static func probe(path: String, group: EventLoopGroup) async -> Probe {
        do {
            let reply = try await send(.status, path: path, group: group, timeout: .seconds(5))
            return .answering(pid: reply.status?.pid)
        } catch {
            if case .notRunning = error { return .stale }
            // Something accepted but did not answer as we do: not ours to remove.
            return .answering(pid: nil)
        }
    }

    private static func exchange(_ request: Data, path: String, group: EventLoopGroup, timeout: TimeAmount) async throws(ControlSocketError) -> Data {
        let promise = group.next().makePromise(of: Data.self)
        let bootstrap = ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FirstLineHandler(promise: promise))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
        } catch {
            promise.fail(error)
            if let io = error as? IOError, io.errnoCode == ECONNREFUSED || io.errnoCode == ENOENT { throw .notRunning(path: path) }
            if let connect = error as? NIOConnectionError, let io = connect.connectionErrors.first?.error as? IOError,
               io.errnoCode == ECONNREFUSED || io.errnoCode == ENOENT {
                throw .notRunning(path: path)
            }
            throw .connect(path: path, reason: "\(error)")
        }
        let timer = channel.eventLoop.scheduleTask(in: timeout) { promise.fail(ChannelError.connectTimeout(timeout)) }
        channel.writeAndFlush(ByteBuffer(bytes: request), promise: nil)
        defer {
            timer.cancel()
            channel.close(promise: nil)
        }
        do {
            return try await promise.futureResult.get()
        } catch {
            throw .connect(path: path, reason: "no reply: \(error)")
        }
    }
}

/// Completes the promise with the first line (or fails it when the server closes first).
private final class FirstLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let promise: EventLoopPromise<Data>

    init(promise: EventLoopPromise<Data>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        promise.succeed(Data(buffer.readableBytesView))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(ChannelError.eof)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.close(promise: nil)
    }
}

extension ControlClient {
    /// `send` on NIO's shared event loops, for the command-line client.
    public static func send(_ command: ControlCommand, path: String) async throws(ControlSocketError) -> ControlReply {
        try await send(command, path: path, group: MultiThreadedEventLoopGroup.singleton)
    }
}
