import Digests
import NIOCore
import NIOHTTP1

/// What to do with one HTTP request that reached the proxy port, decided from its head alone (parsed by NIOHTTP1's
/// decoder). Pure: no I/O, unit-tested on hand-made heads.
enum HTTPProxyDecision: Equatable {
    /// `CONNECT host:port`: open a channel there, answer 200, then pass bytes both ways untouched.
    case tunnel(ProxyTarget)
    /// `GET http://host/path` and the like: open a channel to the origin and send it `head` (origin form, hop-by-hop
    /// headers dropped, `Connection: close`), then the body.
    case forward(ProxyTarget, head: HTTPRequestHead)
    /// `GET /proxy.pac` sent to the proxy port itself.
    case pacFile
    /// Answer with this status and one line of text, then close.
    case refuse(HTTPResponseStatus, message: String)

    static func decide(_ head: HTTPRequestHead, credentials: ProxyCredentials?) -> HTTPProxyDecision {
        if head.method == .GET, head.uri == HTTPProxyPAC.path || head.uri.hasPrefix(HTTPProxyPAC.path + "?") {
            // Served without credentials: browsers fetch the PAC file before they know they need any, and it holds
            // nothing but this proxy's address.
            return .pacFile
        }
        if let credentials, !authorized(head.headers, credentials) {
            return .refuse(.proxyAuthenticationRequired, message: "proxy authentication required")
        }
        if head.method == .CONNECT {
            guard let target = authority(head.uri, defaultPort: nil) else {
                return .refuse(.badRequest, message: "CONNECT needs host:port, got \(head.uri.prefix(200))")
            }
            return .tunnel(target)
        }
        let lowered = head.uri.lowercased()
        guard lowered.hasPrefix("http://") else {
            if lowered.hasPrefix("https://") {
                return .refuse(.badRequest, message: "https URLs go through CONNECT (set this proxy as the https proxy)")
            }
            return .refuse(.badRequest, message: "this is a proxy: ask for an absolute http:// URL, CONNECT host:port, or GET \(HTTPProxyPAC.path)")
        }
        let rest = head.uri.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        var authorityText = rest[..<authorityEnd]
        // user:password@ in a URL is for the origin, never sent on as part of the authority.
        if let at = authorityText.lastIndex(of: "@") { authorityText = authorityText[authorityText.index(after: at)...] }
        guard let target = authority(String(authorityText), defaultPort: 80) else {
            return .refuse(.badRequest, message: "no host in \(head.uri.prefix(200))")
        }
        var path = String(rest[authorityEnd...])
        if let hash = path.firstIndex(of: "#") { path = String(path[..<hash]) }
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        var rewritten = head
        rewritten.uri = path
        rewritten.headers = forwardedHeaders(head.headers, host: String(authorityText))
        return .forward(target, head: rewritten)
    }

    /// `host:port`, `[v6]:port`; `host` alone when there is a default port.
    static func authority(_ text: String, defaultPort: Int?) -> ProxyTarget? {
        var host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let after = text[text.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { return nil }
                portText = after.dropFirst()
            }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            // A bare IPv6 address without brackets cannot carry a port.
            if host.contains(":") { return nil }
        } else {
            host = text[...]
        }
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        let port: Int
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value), portText.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
            port = value
        } else {
            guard let defaultPort else { return nil }
            port = defaultPort
        }
        return ProxyTarget(host: String(host), port: port)
    }

    /// `Proxy-Authorization: Basic base64(user:password)` matching `credentials`.
    static func authorized(_ headers: HTTPHeaders, _ credentials: ProxyCredentials) -> Bool {
        for value in headers["Proxy-Authorization"] {
            let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "basic",
                  let decoded = Base64.decode(parts[1].trimmingSpaces),
                  let colon = decoded.firstIndex(of: UInt8(ascii: ":"))
            else { continue }
            if credentials.matches(user: Array(decoded[..<colon]), password: Array(decoded[(colon + 1)...])) { return true }
        }
        return false
    }

    /// Hop-by-hop headers (RFC 9110 section 7.6.1, and those the request's Connection header names) are for the
    /// proxy, not the origin; the origin gets `Connection: close`, since this connection carries one request.
    static func forwardedHeaders(_ headers: HTTPHeaders, host: String) -> HTTPHeaders {
        var named = Set(["connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer", "upgrade"])
        for value in headers["Connection"] {
            for token in value.split(separator: ",") { named.insert(token.trimmingSpaces.lowercased()) }
        }
        var result = HTTPHeaders()
        for (name, value) in headers where !named.contains(name.lowercased()) {
            result.add(name: name, value: value)
        }
        if !result.contains(name: "Host") { result.add(name: "Host", value: host) }
        result.add(name: "Connection", value: "close")
        return result
    }
}

/// Bytes this proxy writes itself: short answers, and a request head in origin form for the server. Written here
/// rather than through NIOHTTP1's encoders because they go to an SSH channel or straight to the socket, not through
/// a pipeline that has an encoder.
enum HTTPProxyWire {
    /// "HTTP/1.1 502 Bad Gateway" with a one-line text body, closing the connection.
    static func response(_ status: HTTPResponseStatus, message: String, version: HTTPVersion = .http1_1,
                         extraHeaders: [(String, String)] = []) -> ByteBuffer {
        let body = message + "\n"
        var text = "HTTP/\(version.major).\(version.minor) \(status.code) \(status.reasonPhrase)\r\n"
        text += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        if status == .proxyAuthenticationRequired { text += "Proxy-Authenticate: Basic realm=\"tunnel\"\r\n" }
        for (name, value) in extraHeaders { text += "\(name): \(value)\r\n" }
        return ByteBuffer(string: text + "\r\n" + body)
    }

    /// The answer to CONNECT once the channel is open; bytes after it are the tunnelled connection's.
    static func connectEstablished(version: HTTPVersion) -> ByteBuffer {
        ByteBuffer(string: "HTTP/\(version.major).\(version.minor) 200 Connection established\r\n\r\n")
    }

    /// What a failed open is answered with: 504 when no answer could come (the session is down or slow), 502 when
    /// the server answered that it could not connect.
    static func openFailed(_ failure: ProxyOpenFailure, target: ProxyTarget, detail: String, version: HTTPVersion) -> ByteBuffer {
        switch failure {
        case .sessionDown, .timedOut:
            return response(.gatewayTimeout, message: "tunnel: no SSH session to reach \(target) through (\(detail))", version: version)
        case .connectFailed:
            return response(.badGateway, message: "tunnel: the SSH server could not connect to \(target)", version: version)
        case .prohibited:
            return response(.badGateway, message: "tunnel: the SSH server does not allow connections to \(target)", version: version)
        case .other:
            return response(.badGateway, message: "tunnel: the SSH server did not open a connection to \(target) (\(detail))", version: version)
        }
    }

    /// "GET /path HTTP/1.1\r\nHost: ...\r\n\r\n".
    static func requestHead(_ head: HTTPRequestHead) -> ByteBuffer {
        var text = "\(head.method.rawValue) \(head.uri) HTTP/\(head.version.major).\(head.version.minor)\r\n"
        for (name, value) in head.headers { text += "\(name): \(value)\r\n" }
        return ByteBuffer(string: text + "\r\n")
    }

    /// One chunk of a chunked body (the decoder took the client's framing off; the server gets the same framing
    /// back).
    static func chunk(_ body: ByteBuffer) -> ByteBuffer {
        var buffer = ByteBuffer(string: String(body.readableBytes, radix: 16) + "\r\n")
        var body = body
        buffer.writeBuffer(&body)
        buffer.writeString("\r\n")
        return buffer
    }

    static let lastChunk = ByteBuffer(string: "0\r\n\r\n")
}

/// The proxy auto-config file served at `GET /proxy.pac`.
enum HTTPProxyPAC {
    static let path = "/proxy.pac"

    /// Every URL goes through this proxy: SOCKS5 first (the client sends names, which the SSH server resolves, and
    /// any protocol works), then plain SOCKS for clients that know no SOCKS5, then the HTTP proxy on the same port
    /// for clients that speak no SOCKS from a PAC file. With credentials set only the HTTP proxy is offered:
    /// browsers send no SOCKS credentials, but do answer HTTP's 407 with the user's password.
    static func script(address: String, authenticated: Bool) -> String {
        let proxies = authenticated ? "PROXY \(address)" : "SOCKS5 \(address); SOCKS \(address); PROXY \(address)"
        return """
            // Proxy auto-config from tunnel: everything through the SSH tunnel's proxy at \(address).
            function FindProxyForURL(url, host) {
                return "\(proxies)";
            }

            """
    }

    static func response(address: String, authenticated: Bool, version: HTTPVersion) -> ByteBuffer {
        let body = script(address: address, authenticated: authenticated)
        var text = "HTTP/\(version.major).\(version.minor) 200 OK\r\n"
        text += "Content-Type: application/x-ns-proxy-autoconfig\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        return ByteBuffer(string: text + body)
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        let view = Substring(self)
        guard let first = view.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = view.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return view[first...last]
    }
}
