import Digests
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
@testable import TunnelEngine

/// What the HTTP side of the proxy does with a request head, and the bytes it writes itself: no sockets.
@Suite("HTTP proxy: request decisions, rewriting, answers")
struct HTTPProxyDecisionTests {
    func head(_ method: HTTPMethod, _ uri: String, _ headers: [(String, String)] = []) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    @Test("CONNECT host:port, [v6]:port; a CONNECT without a port or with a bad one is a 400")
    func connect() {
        #expect(HTTPProxyDecision.decide(head(.CONNECT, "example.com:443"), credentials: nil) == .tunnel(ProxyTarget(host: "example.com", port: 443)))
        #expect(HTTPProxyDecision.decide(head(.CONNECT, "[::1]:8443"), credentials: nil) == .tunnel(ProxyTarget(host: "::1", port: 8443)))
        for bad in ["example.com", "example.com:", "example.com:0", "example.com:70000", ":443", "a:b", "::1:80", "[::1", "[::1]x", "x y:1"] {
            guard case .refuse(.badRequest, _) = HTTPProxyDecision.decide(head(.CONNECT, bad), credentials: nil) else {
                Issue.record("\(bad) was not refused"); continue
            }
        }
    }

    @Test("an absolute http:// request is rewritten to origin form, hop-by-hop headers dropped, Connection: close")
    func plainRequest() {
        let request = head(.GET, "http://user:pw@example.com:8080/a/b?q=1#frag", [
            ("Host", "example.com:8080"), ("Proxy-Connection", "keep-alive"), ("Proxy-Authorization", "Basic eA=="),
            ("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"), ("Accept", "*/*"), ("Keep-Alive", "300"),
        ])
        guard case .forward(let target, let rewritten) = HTTPProxyDecision.decide(request, credentials: nil) else {
            Issue.record("not forwarded"); return
        }
        #expect(target == ProxyTarget(host: "example.com", port: 8080))
        #expect(rewritten.uri == "/a/b?q=1")
        #expect(rewritten.headers["Host"] == ["example.com:8080"])
        #expect(rewritten.headers["Accept"] == ["*/*"])
        #expect(rewritten.headers["Connection"] == ["close"])
        for gone in ["Proxy-Connection", "Proxy-Authorization", "X-Secret", "Keep-Alive"] {
            #expect(!rewritten.headers.contains(name: gone), "\(gone) was passed on")
        }
        let wire = String(buffer: HTTPProxyWire.requestHead(rewritten))
        #expect(wire.hasPrefix("GET /a/b?q=1 HTTP/1.1\r\n"))
        #expect(wire.hasSuffix("\r\n\r\n"))
    }

    @Test("default port 80, an empty path becomes /, a missing Host is added, IPv6 authorities")
    func plainDefaults() {
        guard case .forward(let target, let rewritten) = HTTPProxyDecision.decide(head(.GET, "http://example.com"), credentials: nil) else {
            Issue.record("not forwarded"); return
        }
        #expect(target == ProxyTarget(host: "example.com", port: 80))
        #expect(rewritten.uri == "/")
        #expect(rewritten.headers["Host"] == ["example.com"])
        guard case .forward(let v6, let v6Head) = HTTPProxyDecision.decide(head(.POST, "HTTP://[2001:db8::1]:81?x"), credentials: nil) else {
            Issue.record("v6 not forwarded"); return
        }
        #expect(v6 == ProxyTarget(host: "2001:db8::1", port: 81))
        #expect(v6Head.uri == "/?x")
    }

    @Test("origin-form requests: /proxy.pac is the PAC file; anything else, and https:// URLs, are 400")
    func originForm() {
        #expect(HTTPProxyDecision.decide(head(.GET, "/proxy.pac"), credentials: nil) == .pacFile)
        #expect(HTTPProxyDecision.decide(head(.GET, "/proxy.pac?v=2"), credentials: ProxyCredentials(user: "a", password: "b")) == .pacFile)
        for uri in ["/", "/index.html", "https://example.com/", "ftp://x/", "http://", "http:///path"] {
            guard case .refuse(.badRequest, _) = HTTPProxyDecision.decide(head(.GET, uri), credentials: nil) else {
                Issue.record("\(uri) was not refused"); continue
            }
        }
    }

    @Test("Basic proxy auth: the right pair passes, a wrong or missing one is 407")
    func auth() {
        let credentials = ProxyCredentials(user: "alice", password: "pa:ss")
        func with(_ value: String?) -> HTTPProxyDecision {
            HTTPProxyDecision.decide(head(.CONNECT, "x:1", value.map { [("Proxy-Authorization", $0)] } ?? []), credentials: credentials)
        }
        #expect(with("Basic " + Base64.encode(Array("alice:pa:ss".utf8))) == .tunnel(ProxyTarget(host: "x", port: 1)))
        #expect(with("basic  " + Base64.encode(Array("alice:pa:ss".utf8))) == .tunnel(ProxyTarget(host: "x", port: 1)))
        for bad in [nil, "Basic " + Base64.encode(Array("alice:wrong".utf8)), "Basic " + Base64.encode(Array("alice".utf8)),
                    "Basic !!!", "Bearer abc", "Basic"] {
            guard case .refuse(.proxyAuthenticationRequired, _) = with(bad) else { Issue.record("\(bad ?? "nil") passed"); continue }
        }
        let answer = String(buffer: HTTPProxyWire.response(.proxyAuthenticationRequired, message: "x"))
        #expect(answer.contains("Proxy-Authenticate: Basic realm=\"tunnel\"\r\n"))
    }

    @Test("answers: status line, one-line body, Content-Length; open failures are 502 or 504")
    func answers() {
        let text = String(buffer: HTTPProxyWire.openFailed(.connectFailed, target: ProxyTarget(host: "x", port: 1), detail: "d", version: .http1_1))
        #expect(text.hasPrefix("HTTP/1.1 502 Bad Gateway\r\n"))
        let body = text.components(separatedBy: "\r\n\r\n")[1]
        #expect(text.contains("Content-Length: \(body.utf8.count)\r\n"))
        #expect(body.filter { $0 == "\n" }.count == 1)
        #expect(String(buffer: HTTPProxyWire.openFailed(.sessionDown, target: ProxyTarget(host: "x", port: 1), detail: "d", version: .http1_0)).hasPrefix("HTTP/1.0 504 "))
        #expect(String(buffer: HTTPProxyWire.connectEstablished(version: .http1_1)) == "HTTP/1.1 200 Connection established\r\n\r\n")
        #expect(String(buffer: HTTPProxyWire.chunk(ByteBuffer(string: String(repeating: "a", count: 26)))) == "1a\r\n" + String(repeating: "a", count: 26) + "\r\n")
    }

    @Test("the PAC script points at this port: SOCKS5, SOCKS, PROXY; only PROXY when a password is required")
    func pac() {
        let open = HTTPProxyPAC.script(address: "127.0.0.1:1080", authenticated: false)
        #expect(open.contains("function FindProxyForURL(url, host)"))
        #expect(open.contains("return \"SOCKS5 127.0.0.1:1080; SOCKS 127.0.0.1:1080; PROXY 127.0.0.1:1080\";"))
        #expect(HTTPProxyPAC.script(address: "[::1]:1080", authenticated: true).contains("return \"PROXY [::1]:1080\";"))
        let response = String(buffer: HTTPProxyPAC.response(address: "127.0.0.1:1080", authenticated: false, version: .http1_1))
        #expect(response.contains("Content-Type: application/x-ns-proxy-autoconfig\r\n"))
    }

    // MARK: - The HTTP front end on NIO's embedded channel (no sockets): framing of what goes on

    /// Runs the decoder and `HTTPProxyRequestHandler` on `input`; returns the events it raised, the bytes it sent on,
    /// and what it answered the client.
    func frontEnd(_ input: String, credentials: ProxyCredentials? = nil) throws -> (events: [String], forwarded: String, answered: String, httpHandlersLeft: Bool) {
        let channel = EmbeddedChannel()
        let recorder = Recorder()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, informationalResponseStrategy: .drop,
                                                    limitConfiguration: HTTPProxyRequestHandler.decoderLimits)),
            HTTPProxyRequestHandler(credentials: credentials, logger: .init(label: "test")),
            recorder,
        ])
        try? channel.writeInbound(ByteBuffer(string: input))
        // Handler removal (after CONNECT) runs as a task on the loop.
        channel.embeddedEventLoop.run()
        let left = (try? channel.pipeline.syncOperations.handler(type: HTTPProxyRequestHandler.self)) != nil
            || (try? channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)) != nil
        var answered = recorder.answer
        while let out = try channel.readOutbound(as: ByteBuffer.self) { answered += String(buffer: out) }
        _ = try? channel.finish()
        return (recorder.events, recorder.bytes, answered, left)
    }

    final class Recorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var events: [String] = []
        var bytes = ""
        /// What the HTTP handler asked the proxy handler to answer.
        var answer = ""
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { bytes += String(buffer: unwrapInboundIn(data)) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? HTTPProxyEvent {
                switch event {
                case .tunnel(let target, _): events.append("tunnel \(target)")
                case .forward(let target, _): events.append("forward \(target)")
                }
            } else if let ended = event as? ProxyHandshakeEnded {
                events.append("ended")
                answer += String(buffer: ended.answer)
            }
        }
    }

    @Test("CONNECT: the bytes after the request reach the next handler raw, and the HTTP handlers are gone")
    func connectLeftover() throws {
        let (events, forwarded, answered, left) = try frontEnd("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\u{16}\u{03}\u{01}raw tls")
        #expect(events == ["tunnel example.com:443"])
        #expect(!left)
        #expect(forwarded == "\u{16}\u{03}\u{01}raw tls")
        #expect(answered == "")
    }

    @Test("a plain request with a chunked body is sent on chunked; a second request is dropped")
    func plainChunked() throws {
        let request = "POST http://h:81/up HTTP/1.1\r\nHost: h:81\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            + "GET http://other/ HTTP/1.1\r\nHost: other\r\n\r\n"
        let (events, forwarded, _, left) = try frontEnd(request)
        #expect(left, "a plain request keeps its decoder: the body is still to come")
        #expect(events == ["forward h:81"])
        #expect(forwarded.hasPrefix("POST /up HTTP/1.1\r\n"))
        #expect(forwarded.contains("Connection: close\r\n"))
        let body = forwarded.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(body == "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        #expect(!forwarded.contains("other"))
    }

    @Test("a Content-Length body is sent on as is")
    func plainLength() throws {
        let (_, forwarded, _, _) = try frontEnd("PUT http://h/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        #expect(forwarded.hasSuffix("\r\n\r\nhello"))
        #expect(forwarded.contains("Content-Length: 5\r\n"))
    }

    @Test("garbage is a 400, an oversized head a 431, a missing password a 407, the PAC file a 200; each closes")
    func refusals() throws {
        #expect(try frontEnd("\u{01}\u{02}garbage\r\n\r\n").answered.hasPrefix("HTTP/1.1 400 "))
        let huge = "GET http://h/ HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 20_000) + "\r\n\r\n"
        #expect(try frontEnd(huge).answered.hasPrefix("HTTP/1.1 431 "))
        let tooMany = "GET http://h/ HTTP/1.1\r\n" + (0..<200).map { "X-\($0): 1\r\n" }.joined() + "\r\n"
        #expect(try frontEnd(tooMany).answered.hasPrefix("HTTP/1.1 431 "))
        let longURL = "GET http://h/" + String(repeating: "a", count: 20_000) + " HTTP/1.1\r\n\r\n"
        #expect(try frontEnd(longURL).answered.hasPrefix("HTTP/1.1 431 "))
        let (events, _, answered, _) = try frontEnd("CONNECT h:1 HTTP/1.1\r\n\r\n", credentials: ProxyCredentials(user: "a", password: "b"))
        #expect(answered.hasPrefix("HTTP/1.1 407 "))
        #expect(events == ["ended"])
        #expect(try frontEnd("GET /proxy.pac HTTP/1.1\r\nHost: x\r\n\r\n").answered.contains("FindProxyForURL"))
        #expect(try frontEnd("GET / HTTP/1.1\r\nHost: x\r\n\r\n").answered.hasPrefix("HTTP/1.1 400 "))
    }
}
