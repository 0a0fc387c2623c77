import NIOCore

/// The server side of a SOCKS 4, 4a or 5 handshake (RFC 1928, RFC 1929, and the SOCKS 4/4a memos), with no I/O:
/// bytes from the client go in, and what to do comes out: wait for more, send a reply and go on, connect to a
/// target, or refuse (with the reply to send before closing, if the protocol has one).
///
/// Pure so it can be unit-tested and fuzzed without sockets, and reused wherever SOCKS is served (the local
/// `DynamicForward` proxy today, the client end of a remote dynamic forward's channels later).
///
/// Hand-written rather than NIOSOCKS (swift-nio-extras): NIOSOCKS has no SOCKS 4/4a, leaves the RFC 1929
/// sub-negotiation to its user, and is a pipeline handler; this one machine covers all three versions, and being
/// free of channels it can serve SOCKS over an SSH channel as well as over a socket.
///
/// Every message has a bounded size (a SOCKS 5 name is at most 255 bytes, a SOCKS 4 user id or name is cut off at
/// `maxField`), so the bytes held while waiting for the rest of a message are bounded too.
struct SOCKSServerHandshake {
    enum Version: Equatable { case v4, v4a, v5 }

    enum Step: Equatable {
        /// The message so far is incomplete: feed more bytes.
        case needMore
        /// Send this to the client, then feed more bytes (SOCKS 5 method choice, sub-negotiation success).
        case reply(ByteBuffer)
        /// The client asked to connect here. Open the channel, then send `reply(for:)`. Bytes left in the input
        /// after this are the client's first payload.
        case connect(ProxyTarget)
        /// Send `reply` (if any), then close: the reason is for the log.
        case refuse(reply: ByteBuffer?, reason: String)
    }

    private enum State {
        /// Nothing parsed yet: the first byte says which version.
        case start
        /// SOCKS 5: method selection done, waiting for the user name and password (RFC 1929).
        case v5Authenticating
        /// SOCKS 5: waiting for the request.
        case v5Request
        case done
    }

    /// Longest SOCKS 4 user id or 4a host name we wait for.
    static let maxField = 255

    private var state = State.start
    private(set) var version: Version?
    let credentials: ProxyCredentials?

    init(credentials: ProxyCredentials?) {
        self.credentials = credentials
    }

    /// Parse what `input` holds; consumes the bytes of each complete message.
    mutating func next(_ input: inout ByteBuffer) -> Step {
        switch state {
        case .start:
            guard let first = input.getInteger(at: input.readerIndex, as: UInt8.self) else { return .needMore }
            switch first {
            case 0x05: return greeting5(&input)
            case 0x04: return request4(&input)
            default: return refuse(nil, "not a SOCKS request (first byte 0x\(hex(first)))")
            }
        case .v5Authenticating:
            return authenticate5(&input)
        case .v5Request:
            return request5(&input)
        case .done:
            return refuse(nil, "handshake already finished")
        }
    }

    // MARK: - SOCKS 5

    private enum Method {
        static let noAuthentication: UInt8 = 0x00
        static let userPassword: UInt8 = 0x02
        static let noneAcceptable: UInt8 = 0xFF
    }

    /// VER NMETHODS METHODS...
    private mutating func greeting5(_ input: inout ByteBuffer) -> Step {
        version = .v5
        guard input.readableBytes >= 2, let count = input.getInteger(at: input.readerIndex + 1, as: UInt8.self) else {
            return .needMore
        }
        guard count > 0 else { return refuse(nil, "SOCKS5 greeting offers no authentication method") }
        guard let bytes = input.readBytes(length: 2 + Int(count)) else { return .needMore }
        let methods = bytes.dropFirst(2)
        if credentials != nil {
            guard methods.contains(Method.userPassword) else {
                return refuse(ByteBuffer(bytes: [0x05, Method.noneAcceptable]),
                              "SOCKS5 client offers no username/password authentication, which this proxy requires")
            }
            state = .v5Authenticating
            return .reply(ByteBuffer(bytes: [0x05, Method.userPassword]))
        }
        guard methods.contains(Method.noAuthentication) else {
            return refuse(ByteBuffer(bytes: [0x05, Method.noneAcceptable]),
                          "SOCKS5 client does not offer 'no authentication' (no TunnelProxyAuth is set)")
        }
        state = .v5Request
        return .reply(ByteBuffer(bytes: [0x05, Method.noAuthentication]))
    }

    /// RFC 1929: VER(1) ULEN UNAME PLEN PASSWD.
    private mutating func authenticate5(_ input: inout ByteBuffer) -> Step {
        let start = input.readerIndex
        guard let subVersion = input.getInteger(at: start, as: UInt8.self) else { return .needMore }
        guard subVersion == 0x01 else {
            return refuse(ByteBuffer(bytes: [0x01, 0x01]), "SOCKS5 username/password message has version \(subVersion), not 1")
        }
        guard let userLength = input.getInteger(at: start + 1, as: UInt8.self) else { return .needMore }
        guard let passwordLength = input.getInteger(at: start + 2 + Int(userLength), as: UInt8.self) else { return .needMore }
        guard let message = input.readBytes(length: 3 + Int(userLength) + Int(passwordLength)) else { return .needMore }
        let user = Array(message[2..<2 + Int(userLength)])
        let password = Array(message[(3 + Int(userLength))...])
        guard let credentials, credentials.matches(user: user, password: password) else {
            return refuse(ByteBuffer(bytes: [0x01, 0x01]), "SOCKS5 username/password rejected (user \(printable(user)))")
        }
        state = .v5Request
        return .reply(ByteBuffer(bytes: [0x01, 0x00]))
    }

    /// VER CMD RSV ATYP DST.ADDR DST.PORT.
    private mutating func request5(_ input: inout ByteBuffer) -> Step {
        let start = input.readerIndex
        guard input.readableBytes >= 5,
              let version = input.getInteger(at: start, as: UInt8.self),
              let command = input.getInteger(at: start + 1, as: UInt8.self),
              let addressType = input.getInteger(at: start + 3, as: UInt8.self),
              let firstAddressByte = input.getInteger(at: start + 4, as: UInt8.self)
        else { return .needMore }
        guard version == 0x05 else {
            return refuse(reply5(.generalFailure), "SOCKS5 request has version \(version)")
        }
        let addressLength: Int
        switch addressType {
        case 0x01: addressLength = 4
        case 0x04: addressLength = 16
        case 0x03: addressLength = 1 + Int(firstAddressByte)
        default:
            return refuse(reply5(.addressTypeNotSupported), "SOCKS5 request with unknown address type \(addressType)")
        }
        guard let message = input.readBytes(length: 4 + addressLength + 2) else { return .needMore }
        let address = message[4..<4 + addressLength]
        let port = Int(message[4 + addressLength]) << 8 | Int(message[5 + addressLength])
        switch command {
        case 0x01: break
        case 0x02: return refuse(reply5(.commandNotSupported), "SOCKS5 BIND is not supported")
        case 0x03: return refuse(reply5(.commandNotSupported), "SOCKS5 UDP ASSOCIATE is not supported (the SSH server forwards TCP only)")
        default: return refuse(reply5(.commandNotSupported), "SOCKS5 request with unknown command \(command)")
        }
        let host: String
        switch addressType {
        case 0x01: host = address.map(String.init).joined(separator: ".")
        case 0x04: host = ipv6Text(Array(address))
        default:
            guard let name = hostName(address.dropFirst()) else {
                return refuse(reply5(.generalFailure), "SOCKS5 request with an empty or unprintable host name")
            }
            host = name
        }
        state = .done
        return .connect(ProxyTarget(host: host, port: port))
    }

    /// RFC 1928 section 6 reply codes.
    enum Reply5: UInt8 {
        case succeeded = 0x00
        case generalFailure = 0x01
        case notAllowed = 0x02
        case networkUnreachable = 0x03
        case hostUnreachable = 0x04
        case connectionRefused = 0x05
        case ttlExpired = 0x06
        case commandNotSupported = 0x07
        case addressTypeNotSupported = 0x08
    }

    /// VER REP RSV ATYP BND.ADDR BND.PORT. The bound address is the server's business and not known here; clients
    /// of a CONNECT ignore it, so it is 0.0.0.0:0 (as OpenSSH sends).
    func reply5(_ code: Reply5) -> ByteBuffer {
        ByteBuffer(bytes: [0x05, code.rawValue, 0x00, 0x01, 0, 0, 0, 0, 0, 0])
    }

    // MARK: - SOCKS 4 and 4a

    /// VER CMD DSTPORT(2) DSTIP(4) USERID NUL [HOSTNAME NUL when DSTIP is 0.0.0.x, x != 0: SOCKS 4a].
    private mutating func request4(_ input: inout ByteBuffer) -> Step {
        version = .v4
        let start = input.readerIndex
        guard input.readableBytes >= 8 else { return .needMore }
        guard let userEnd = nulIndex(in: input, from: start + 8) else {
            if input.readableBytes - 8 > Self.maxField { return refuse(reply4(granted: false), "SOCKS4 user id longer than \(Self.maxField) bytes") }
            return .needMore
        }
        let ip = input.getBytes(at: start + 4, length: 4)!
        let is4a = ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0
        var end = userEnd
        var name: [UInt8] = []
        if is4a {
            version = .v4a
            guard let nameEnd = nulIndex(in: input, from: userEnd + 1) else {
                if input.writerIndex - (userEnd + 1) > Self.maxField { return refuse(reply4(granted: false), "SOCKS4a host name longer than \(Self.maxField) bytes") }
                return .needMore
            }
            name = input.getBytes(at: userEnd + 1, length: nameEnd - userEnd - 1)!
            end = nameEnd
        }
        let message = input.readBytes(length: end + 1 - start)!
        let command = message[1]
        let port = Int(message[2]) << 8 | Int(message[3])
        guard command == 0x01 else {
            return refuse(reply4(granted: false), command == 0x02 ? "SOCKS4 BIND is not supported" : "SOCKS4 request with unknown command \(command)")
        }
        if credentials != nil {
            // SOCKS 4 has only an unchecked user id: with a password set it cannot be let through.
            return refuse(reply4(granted: false), "SOCKS4 cannot authenticate and this proxy requires a password (TunnelProxyAuth)")
        }
        let host: String
        if is4a {
            guard let hostName = hostName(name[...]) else { return refuse(reply4(granted: false), "SOCKS4a request with an empty or unprintable host name") }
            host = hostName
        } else {
            host = ip.map(String.init).joined(separator: ".")
        }
        state = .done
        return .connect(ProxyTarget(host: host, port: port))
    }

    /// VN(0) CD DSTPORT DSTIP: 90 granted, 91 rejected or failed (the only failure code that does not talk about
    /// identd).
    func reply4(granted: Bool) -> ByteBuffer {
        ByteBuffer(bytes: [0x00, granted ? 0x5A : 0x5B, 0, 0, 0, 0, 0, 0])
    }

    // MARK: - After the open

    /// What to send once the channel opened (nil) or failed.
    func reply(for failure: ProxyOpenFailure?) -> ByteBuffer {
        guard version == .v5 else { return reply4(granted: failure == nil) }
        guard let failure else { return reply5(.succeeded) }
        switch failure {
        // sshd gives one code for "refused" and "unknown host", and libssh2 drops its text (see ProxyOpenFailure):
        // "host unreachable" is the reply that is true for both.
        case .connectFailed: return reply5(.hostUnreachable)
        case .prohibited: return reply5(.notAllowed)
        // The tunnel is the network this proxy reaches everything through.
        case .sessionDown: return reply5(.networkUnreachable)
        case .timedOut: return reply5(.ttlExpired)
        case .other: return reply5(.generalFailure)
        }
    }

    // MARK: - Helpers

    private mutating func refuse(_ reply: ByteBuffer?, _ reason: String) -> Step {
        state = .done
        return .refuse(reply: reply, reason: reason)
    }

    private func nulIndex(in buffer: ByteBuffer, from index: Int) -> Int? {
        guard index <= buffer.writerIndex else { return nil }
        let limit = min(buffer.writerIndex, index + Self.maxField + 1)
        return buffer.withUnsafeReadableBytes { bytes in
            let base = buffer.readerIndex
            return (index..<limit).first { bytes[$0 - base] == 0 }
        }
    }

    /// A host name as sent: printable ASCII or UTF-8 without control characters or spaces; nil otherwise.
    private func hostName(_ bytes: ArraySlice<UInt8>) -> String? {
        guard !bytes.isEmpty, bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else { return nil }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        return text
    }

    private func ipv6Text(_ bytes: [UInt8]) -> String {
        // NIO's SocketAddress writes the canonical text form (inet_ntop); no socket is involved.
        if let text = try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0).ipAddress { return text }
        return stride(from: 0, to: 16, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }

    private func printable(_ bytes: [UInt8]) -> String {
        String(decoding: bytes.prefix(64).map { $0 >= 0x20 && $0 < 0x7F ? $0 : UInt8(ascii: "?") }, as: UTF8.self).debugDescription
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return digits.count == 1 ? "0" + digits : digits
}
