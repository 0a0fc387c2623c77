import Logging
import NIOCore
import NIOHTTP1

/// What the HTTP front end tells the `ProxyClientHandler` behind it (as a user inbound event).
enum HTTPProxyEvent {
    /// CONNECT: open a channel to the target and answer 200. The decoder and this handler are removed once the
    /// request has ended; bytes after it reach the `ProxyClientHandler` raw.
    case tunnel(ProxyTarget, version: HTTPVersion)
    /// A plain proxy request: open a channel to the target. The request (origin form) follows as bytes.
    case forward(ProxyTarget, version: HTTPVersion)
}

/// Sits behind NIOHTTP1's request decoder while an HTTP client's request is read: decides from the head what the
/// request is (`HTTPProxyDecision`), answers what it can answer itself (PAC file, errors), and for a plain proxy
/// request turns the decoded parts back into bytes for the server: the head in origin form, the body with the
/// framing the client used.
///
/// One request per connection: the origin is sent `Connection: close`, so it closes after its answer, and anything
/// the client sends after the first request is dropped (a client that pipelines a second request sees the
/// connection close and asks again on a new one).
final class HTTPProxyRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHead
        /// CONNECT decided: waiting for the end of its (empty) request.
        case tunnel
        /// Plain request: its body goes on, chunked again if the client chunked it.
        case forwardingBody(chunked: Bool)
        /// The request has ended (or was answered here): nothing more goes on.
        case finished
    }

    private var state = State.awaitingHead
    private let credentials: ProxyCredentials?
    private let logger: Logger

    init(credentials: ProxyCredentials?, logger: Logger) {
        self.credentials = credentials
        self.logger = logger
    }

    /// The decoder's limits: a proxy request head is small; anything bigger is refused before it is buffered.
    static var decoderLimits: NIOHTTPDecoderLimitConfiguration {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8 * 1024
        limits.maxHeaderListSize = 16 * 1024
        limits.maxHeaderFieldCount = 100
        return limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .awaitingHead):
            decided(HTTPProxyDecision.decide(head, credentials: credentials), head: head, context: context)
        case (.body(let body), .forwardingBody(let chunked)):
            context.fireChannelRead(wrapInboundOut(chunked ? HTTPProxyWire.chunk(body) : body))
        case (.end, .forwardingBody(let chunked)):
            state = .finished
            if chunked { context.fireChannelRead(wrapInboundOut(HTTPProxyWire.lastChunk)) }
        case (.end, .tunnel):
            state = .finished
            // Bytes after the CONNECT request are the tunnelled connection's: let them reach the proxy handler raw.
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            if let decoder = try? context.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
                context.pipeline.syncOperations.removeHandler(decoder, promise: nil)
            }
        case (.head, _):
            if case .finished = state { logger.debug("HTTP proxy: a second request on one connection is not forwarded; dropped") }
            state = .finished
        case (.body, _), (.end, _):
            break
        }
    }

    private func decided(_ decision: HTTPProxyDecision, head: HTTPRequestHead, context: ChannelHandlerContext) {
        switch decision {
        case .tunnel(let target):
            state = .tunnel
            context.fireUserInboundEventTriggered(HTTPProxyEvent.tunnel(target, version: head.version))
        case .forward(let target, let rewritten):
            let chunked = head.headers["Transfer-Encoding"].contains { $0.lowercased().contains("chunked") }
            state = .forwardingBody(chunked: chunked)
            context.fireUserInboundEventTriggered(HTTPProxyEvent.forward(target, version: head.version))
            context.fireChannelRead(wrapInboundOut(HTTPProxyWire.requestHead(rewritten)))
        case .pacFile:
            state = .finished
            let address = context.channel.localAddress.map(describe) ?? "127.0.0.1:1080"
            logger.debug("HTTP proxy: PAC file sent (proxy \(address))")
            answer(HTTPProxyPAC.response(address: address, authenticated: credentials != nil, version: head.version), context: context)
        case .refuse(let status, let message):
            state = .finished
            logger.debug("HTTP proxy: \(head.method.rawValue) \(head.uri.prefix(200)) refused: \(status.code) \(message)")
            answer(HTTPProxyWire.response(status, message: "tunnel: \(message)", version: head.version), context: context)
        }
    }

    /// An answer of our own, after which the connection closes: the `ProxyClientHandler` writes it and closes
    /// gently (see `ProxyHandshakeEnded`).
    private func answer(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        context.fireUserInboundEventTriggered(ProxyHandshakeEnded(answer: buffer))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard case .awaitingHead = state else { return context.fireErrorCaught(error) }
        state = .finished
        let (status, reason): (HTTPResponseStatus, String)
        if let parserError = error as? HTTPParserError, parserError == .headerOverflow {
            (status, reason) = (.requestHeaderFieldsTooLarge, "request head too large")
        } else {
            (status, reason) = (.badRequest, "not an HTTP request (\(error))")
        }
        logger.debug("proxy client closed: \(reason)")
        answer(HTTPProxyWire.response(status, message: "tunnel: \(reason)"), context: context)
    }
}

/// Fired when the HTTP handshake ended without a target: the proxy handler stops its clock, writes `answer`, and
/// closes.
struct ProxyHandshakeEnded {
    var answer: ByteBuffer
}
