import NIOCore
import NIOHTTP1
import NIOPosix

/// Where `--metrics` serves: a numeric loopback address and a port ("127.0.0.1:9469", "[::1]:9469"). Only loopback:
/// the endpoint has no authentication and tells anyone who asks which servers this machine tunnels to.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: Int

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case notLoopback(String)

        public var description: String {
            switch self {
            case .malformed(let text):
                return "--metrics \(text): expected ADDRESS:PORT with a numeric loopback address, e.g. 127.0.0.1:9469 or [::1]:9469"
            case .notLoopback(let text):
                return "--metrics \(text): not a loopback address; the metrics endpoint has no authentication, so it "
                    + "listens on 127.0.0.0/8 or ::1 only (put a reverse proxy in front to publish it)"
            }
        }
    }

    public init(parsing text: String) throws(Problem) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw .malformed(text)
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw .malformed(text) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (0...65535).contains(port), !host.isEmpty else { throw .malformed(text) }
        // Numeric only: a name would need a DNS lookup, and could resolve to anything.
        guard let address = try? SocketAddress(ipAddress: String(host), port: port) else { throw .malformed(text) }
        switch address {
        case .v4:
            guard host.split(separator: ".").first == "127" else { throw .notLoopback(text) }
        case .v6:
            guard address.ipAddress == "::1" else { throw .notLoopback(text) }
        default:
            throw .malformed(text)
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The HTTP endpoint Prometheus scrapes: `GET /metrics` answers the current exposition, anything else 404 (or 405
/// for other methods). SwiftNIO's HTTP/1 codec, no web framework: one route does not need one.
public final class MetricsServer: Sendable {
    private let channel: Channel

    /// The port it listens on (the one the system chose, when asked for port 0).
    public var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: Channel) {
        self.channel = channel
    }

    public static func start(at address: MetricsAddress, metrics: TunnelMetrics, group: EventLoopGroup) async throws -> MetricsServer {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // On the channel's own loop: the handlers are made and added there, never sent across threads.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics))
                }
            }
            .bind(host: address.host, port: address.port)
            .get()
        return MetricsServer(channel: channel)
    }

    public func stop() async {
        try? await channel.close()
    }
}

/// One HTTP connection of a scraper. Requests are answered in order, after their end arrives.
private final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: TunnelMetrics
    private var head: HTTPRequestHead?

    init(metrics: TunnelMetrics) {
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break  // a scrape has no body; anything sent is ignored
        case .end:
            guard let request = head else { return }
            head = nil
            respond(to: request, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let status: HTTPResponseStatus
        var body: [UInt8]
        var headers = HTTPHeaders()
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET\n".utf8)
            headers.add(name: "Allow", value: "GET, HEAD")
        } else if path == "/metrics" {
            status = .ok
            body = metrics.exposition()
            headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
        } else {
            status = .notFound
            body = Array("metrics are at /metrics\n".utf8)
        }
        if headers["Content-Type"].isEmpty { headers.add(name: "Content-Type", value: "text/plain; charset=utf-8") }
        headers.add(name: "Content-Length", value: "\(body.count)")
        if request.method == .HEAD { body = [] }
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive { done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A malformed request (the HTTP decoder's error): nothing sensible to answer; drop this connection only.
        context.close(promise: nil)
    }
}
