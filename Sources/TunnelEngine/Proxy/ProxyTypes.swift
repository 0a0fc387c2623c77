import NIOCore

/// Where a proxy client asked to go. `host` is a name or an address as the client wrote it; it is handed to the SSH
/// server as is, so names are resolved there (no DNS lookup on this machine: nothing leaks locally).
public struct ProxyTarget: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// "example.com:443", "[2001:db8::1]:80".
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The user name and password a proxy client must give (SOCKS5 RFC 1929, HTTP Basic proxy auth), from our own
/// `TunnelProxyAuth user:password` keyword.
public struct ProxyCredentials: Hashable, Sendable {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }

    /// Compares without stopping at the first differing byte, so the time taken does not tell how much of a guess
    /// was right.
    func matches(user otherUser: [UInt8], password otherPassword: [UInt8]) -> Bool {
        // Both compared whatever the first gives, for the same reason.
        let userMatches = constantTimeEqual(Array(user.utf8), otherUser)
        let passwordMatches = constantTimeEqual(Array(password.utf8), otherPassword)
        return userMatches && passwordMatches
    }

    private func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// Why the server did not open the channel a proxy client asked for, as far as we can tell: the reply code each
/// proxy protocol sends depends on it.
///
/// libssh2 (1.10) keeps only the reason code of SSH_MSG_CHANNEL_OPEN_FAILURE, not the server's description, and
/// OpenSSH's sshd answers both "connection refused" and "unknown host" with the same code (2, connect failed): the
/// two cannot be told apart here, so both are `connectFailed`.
enum ProxyOpenFailure: Equatable, Sendable {
    /// The server could not connect to the target (refused, unreachable, unknown name: reason code 2).
    case connectFailed
    /// The server does not allow it (`AllowTcpForwarding no`, `PermitOpen`: reason code 1).
    case prohibited
    /// No SSH session to ask (not up, ended, or the tunnel is stopping).
    case sessionDown
    /// No answer in time.
    case timedOut
    /// Anything else (resource shortage, unknown channel type, ...).
    case other

    init(_ failure: ChannelOpenFailure) {
        let message = failure.message.lowercased()
        if message.contains("connect failed") {
            self = .connectFailed
        } else if message.contains("administratively prohibited") {
            self = .prohibited
        } else if message.contains("timed out") || message.contains("timeout") {
            self = .timedOut
        } else if message.contains("session") || message.contains("stopping") {
            self = .sessionDown
        } else {
            self = .other
        }
    }
}

/// The proxy protocol a client speaks, told apart by its first byte (as OpenSSH's `channel_pre_dynamic` does for
/// SOCKS 4 and 5; anything else is taken for HTTP, whose requests start with a method name in ASCII letters).
enum ProxyProtocol: Equatable {
    case socks5, socks4, http

    init(firstByte: UInt8) {
        switch firstByte {
        case 0x05: self = .socks5
        case 0x04: self = .socks4
        default: self = .http
        }
    }
}
