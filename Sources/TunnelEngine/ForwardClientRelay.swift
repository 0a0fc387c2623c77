import NIOCore

/// The handler on a client socket paired with a `ForwardedConnection`: feeds the socket's bytes and events to it and
/// asks the session to step that one connection; input that comes before the pairing is held
/// (`ClientInputBeforePairing`). Used as is for the jump host's end of a ProxyJump socket pair (`JumpLink`), and
/// subclassed by `LocalClientHandler` for an accepted local client, which also has to be announced and may close
/// while it still waits for a session.
class ForwardClientRelay: ChannelInboundHandler, ForwardClientHandler {
    typealias InboundIn = ByteBuffer
    private(set) var forward: ForwardedConnection?
    private var connection: SSHConnection?
    private var early = ClientInputBeforePairing()

    func attach(_ forward: ForwardedConnection, _ connection: SSHConnection) {
        self.forward = forward
        self.connection = connection
        early.release(to: forward)
    }

    /// Declared here (not left to NIO's default) so that a subclass's override is the one NIO calls.
    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if let forward { forward.clientRead(&buffer) } else { early.hold(&buffer) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let forward, let connection else { return }
        forward.clientReadComplete()
        connection.clientEvent(forward)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            if let forward, let connection {
                forward.clientSentEOF()
                connection.clientEvent(forward)
            } else {
                early.holdEOF()
            }
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
        } else {
            closedBeforePairing(context: context)
        }
        forward = nil
        connection = nil
        context.fireChannelInactive()
    }

    /// The socket closed before it was paired with a forwarded connection.
    func closedBeforePairing(context: ChannelHandlerContext) {}

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A reset from the client: close this one connection; the tunnel stays up.
        context.close(promise: nil)
    }
}
