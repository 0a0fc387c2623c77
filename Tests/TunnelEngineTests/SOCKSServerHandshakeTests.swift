import NIOCore
import Testing
@testable import TunnelEngine

/// The SOCKS 4/4a/5 server handshake, fed bytes by hand: no sockets.
@Suite("SOCKS handshake: versions 4, 4a and 5, auth, bad input")
struct SOCKSServerHandshakeTests {
    typealias Step = SOCKSServerHandshake.Step
    let secret = ProxyCredentials(user: "alice", password: "s3cret")

    /// Feeds `bytes` (in pieces of `chunk`) and collects every step until one that is not `.needMore` after the input
    /// ran out, or the handshake ends.
    func run(_ handshake: inout SOCKSServerHandshake, _ bytes: [UInt8], chunk: Int = .max) -> (steps: [Step], left: [UInt8]) {
        var input = ByteBuffer()
        var steps: [Step] = []
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            input.writeBytes(bytes[offset..<end])
            offset = end
            inner: while true {
                let step = handshake.next(&input)
                switch step {
                case .needMore:
                    break inner
                case .reply:
                    steps.append(step)
                case .connect, .refuse:
                    steps.append(step)
                    return (steps, input.readBytes(length: input.readableBytes) ?? [])
                }
            }
        } while offset < bytes.count
        steps.append(.needMore)
        return (steps, input.readBytes(length: input.readableBytes) ?? [])
    }

    func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    static let greetingNoAuth: [UInt8] = [5, 1, 0]
    static func connect5(name: String, port: Int) -> [UInt8] {
        [5, 1, 0, 3, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }

    // MARK: SOCKS 5

    @Test("SOCKS5 with a domain name: method choice, then the target as sent (not resolved), then the payload is left")
    func socks5Name() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        let bytes = Self.greetingNoAuth + Self.connect5(name: "db.internal", port: 5432) + Array("hello".utf8)
        let (steps, left) = run(&handshake, bytes)
        #expect(steps == [.reply(buffer([5, 0])), .connect(ProxyTarget(host: "db.internal", port: 5432))])
        #expect(left == Array("hello".utf8))
        #expect(handshake.version == .v5)
        #expect(handshake.reply(for: nil) == buffer([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]))
    }

    @Test("SOCKS5 one byte at a time gives the same result")
    func socks5Bytewise() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        let (steps, left) = run(&handshake, Self.greetingNoAuth + Self.connect5(name: "example.com", port: 443), chunk: 1)
        #expect(steps == [.reply(buffer([5, 0])), .connect(ProxyTarget(host: "example.com", port: 443))])
        #expect(left.isEmpty)
    }

    @Test("SOCKS5 with IPv4 and IPv6 addresses")
    func socks5Addresses() {
        var v4 = SOCKSServerHandshake(credentials: nil)
        #expect(run(&v4, Self.greetingNoAuth + [5, 1, 0, 1, 127, 0, 0, 1, 0x1F, 0x90]).steps.last == .connect(ProxyTarget(host: "127.0.0.1", port: 8080)))
        var v6 = SOCKSServerHandshake(credentials: nil)
        let loopback6: [UInt8] = Array(repeating: 0, count: 15) + [1]
        #expect(run(&v6, Self.greetingNoAuth + [5, 1, 0, 4] + loopback6 + [0, 80]).steps.last == .connect(ProxyTarget(host: "::1", port: 80)))
        var v6b = SOCKSServerHandshake(credentials: nil)
        let doc: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + Array(repeating: 0, count: 11) + [5]
        #expect(run(&v6b, Self.greetingNoAuth + [5, 1, 0, 4] + doc + [1, 0xBB]).steps.last == .connect(ProxyTarget(host: "2001:db8::5", port: 443)))
        #expect(ProxyTarget(host: "2001:db8::5", port: 443).description == "[2001:db8::5]:443")
    }

    @Test("BIND and UDP ASSOCIATE are answered 'command not supported' (7)")
    func socks5Commands() {
        for command: UInt8 in [2, 3, 9] {
            var handshake = SOCKSServerHandshake(credentials: nil)
            let steps = run(&handshake, Self.greetingNoAuth + [5, command, 0, 1, 127, 0, 0, 1, 0, 80]).steps
            guard case .refuse(let reply, _)? = steps.last else { Issue.record("command \(command): \(steps)"); continue }
            #expect(reply == buffer([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]))
        }
    }

    @Test("an unknown address type is answered 8; an empty name is refused")
    func socks5BadAddress() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        guard case .refuse(let reply, _)? = run(&handshake, Self.greetingNoAuth + [5, 1, 0, 7, 1, 2, 3]).steps.last else {
            Issue.record("not refused"); return
        }
        #expect(reply?.getInteger(at: 1, as: UInt8.self) == 8)
        var empty = SOCKSServerHandshake(credentials: nil)
        guard case .refuse? = run(&empty, Self.greetingNoAuth + [5, 1, 0, 3, 0, 0, 80]).steps.last else { Issue.record("empty name taken"); return }
        var control = SOCKSServerHandshake(credentials: nil)
        guard case .refuse? = run(&control, Self.greetingNoAuth + Self.connect5(name: "a\nb", port: 80)).steps.last else { Issue.record("control char taken"); return }
    }

    @Test("a client that offers no acceptable method gets 0xFF")
    func socks5NoMethod() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        #expect(run(&handshake, [5, 1, 2]).steps.last == .refuse(reply: buffer([5, 0xFF]), reason: "SOCKS5 client does not offer 'no authentication' (no TunnelProxyAuth is set)"))
        var none = SOCKSServerHandshake(credentials: nil)
        guard case .refuse(nil, _)? = run(&none, [5, 0]).steps.last else { Issue.record("zero methods taken"); return }
    }

    // MARK: Auth

    @Test("with credentials: username/password is chosen, the right pair passes, then the request")
    func socks5Auth() {
        var handshake = SOCKSServerHandshake(credentials: secret)
        let auth: [UInt8] = [1, 5] + Array("alice".utf8) + [6] + Array("s3cret".utf8)
        let (steps, _) = run(&handshake, [5, 2, 0, 2] + auth + Self.connect5(name: "x", port: 1), chunk: 3)
        #expect(steps == [.reply(buffer([5, 2])), .reply(buffer([1, 0])), .connect(ProxyTarget(host: "x", port: 1))])
    }

    @Test("with credentials: a wrong password or user is refused with status 1; no-auth-only clients get 0xFF")
    func socks5AuthRefused() {
        for (user, password) in [("alice", "wrong"), ("bob", "s3cret"), ("alice", "s3cre"), ("alice", "s3cret!"), ("", "")] {
            var handshake = SOCKSServerHandshake(credentials: secret)
            let auth: [UInt8] = [1, UInt8(user.utf8.count)] + Array(user.utf8) + [UInt8(password.utf8.count)] + Array(password.utf8)
            guard case .refuse(let reply, _)? = run(&handshake, [5, 1, 2] + auth).steps.last else { Issue.record("\(user):\(password) passed"); continue }
            #expect(reply == buffer([1, 1]))
        }
        var noAuth = SOCKSServerHandshake(credentials: secret)
        guard case .refuse(let reply, _)? = run(&noAuth, Self.greetingNoAuth).steps.last else { Issue.record("no-auth passed"); return }
        #expect(reply == buffer([5, 0xFF]))
    }

    @Test("SOCKS4 is refused (0x5B) when a password is required: it cannot authenticate")
    func socks4WithAuth() {
        var handshake = SOCKSServerHandshake(credentials: secret)
        guard case .refuse(let reply, _)? = run(&handshake, [4, 1, 0, 80, 127, 0, 0, 1, 0]).steps.last else { Issue.record("SOCKS4 passed"); return }
        #expect(reply == buffer([0, 0x5B, 0, 0, 0, 0, 0, 0]))
    }

    // MARK: SOCKS 4 and 4a

    @Test("SOCKS4 with an address, and 4a with a name resolved by the server")
    func socks4() {
        var v4 = SOCKSServerHandshake(credentials: nil)
        let (steps, left) = run(&v4, [4, 1, 0x1F, 0x90, 10, 1, 2, 3] + Array("user".utf8) + [0] + [0xAA])
        #expect(steps == [.connect(ProxyTarget(host: "10.1.2.3", port: 8080))])
        #expect(left == [0xAA])
        #expect(v4.version == .v4)
        #expect(v4.reply(for: nil) == buffer([0, 0x5A, 0, 0, 0, 0, 0, 0]))
        #expect(v4.reply(for: .connectFailed) == buffer([0, 0x5B, 0, 0, 0, 0, 0, 0]))

        var v4a = SOCKSServerHandshake(credentials: nil)
        let request: [UInt8] = [4, 1, 0, 80, 0, 0, 0, 1, 0] + Array("example.com".utf8) + [0]
        #expect(run(&v4a, request, chunk: 2).steps == [.connect(ProxyTarget(host: "example.com", port: 80))])
        #expect(v4a.version == .v4a)
    }

    @Test("SOCKS4 BIND is refused; an endless user id or name is refused once past 255 bytes")
    func socks4Bad() {
        var bind = SOCKSServerHandshake(credentials: nil)
        guard case .refuse? = run(&bind, [4, 2, 0, 80, 127, 0, 0, 1, 0]).steps.last else { Issue.record("BIND passed"); return }
        var longUser = SOCKSServerHandshake(credentials: nil)
        guard case .refuse? = run(&longUser, [4, 1, 0, 80, 127, 0, 0, 1] + Array(repeating: 0x41, count: 300), chunk: 50).steps.last else {
            Issue.record("long user id not refused"); return
        }
        var longName = SOCKSServerHandshake(credentials: nil)
        guard case .refuse? = run(&longName, [4, 1, 0, 80, 0, 0, 0, 1, 0] + Array(repeating: 0x41, count: 300), chunk: 50).steps.last else {
            Issue.record("long name not refused"); return
        }
        // Just under the limit: still waiting, nothing refused.
        var waiting = SOCKSServerHandshake(credentials: nil)
        #expect(run(&waiting, [4, 1, 0, 80, 127, 0, 0, 1] + Array(repeating: 0x41, count: 255)).steps == [.needMore])
    }

    // MARK: Replies after the open

    @Test("open failures map to SOCKS5 reply codes")
    func replyCodes() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        _ = run(&handshake, Self.greetingNoAuth + Self.connect5(name: "x", port: 1))
        func code(_ failure: ProxyOpenFailure) -> UInt8? { handshake.reply(for: failure).getInteger(at: 1, as: UInt8.self) }
        #expect(code(.connectFailed) == 4)
        #expect(code(.prohibited) == 2)
        #expect(code(.sessionDown) == 3)
        #expect(code(.timedOut) == 6)
        #expect(code(.other) == 1)
        #expect(ProxyOpenFailure(ChannelOpenFailure(message: "Channel open failure (connect failed)")) == .connectFailed)
        #expect(ProxyOpenFailure(ChannelOpenFailure(message: "Channel open failure (administratively prohibited)")) == .prohibited)
        #expect(ProxyOpenFailure(ChannelOpenFailure(message: "the SSH session is not up")) == .sessionDown)
        #expect(ProxyOpenFailure(ChannelOpenFailure(message: "Channel open failure (resource shortage)")) == .other)
    }

    // MARK: Garbage

    @Test("a first byte that is no SOCKS version is refused without a reply")
    func notSOCKS() {
        var handshake = SOCKSServerHandshake(credentials: nil)
        guard case .refuse(nil, _)? = run(&handshake, [0x16, 3, 1]).steps.last else { Issue.record("garbage taken"); return }
    }

    @Test("random input never traps, and never holds more than one message's worth of bytes")
    func fuzz() {
        var generator = SplitMix(seed: 42)
        for round in 0..<3000 {
            var handshake = SOCKSServerHandshake(credentials: round % 3 == 0 ? secret : nil)
            let length = Int(generator.next() % 600)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if !bytes.isEmpty { bytes[0] = round % 2 == 0 ? 5 : 4 }
            if bytes.count > 1, round % 4 == 0 { bytes[1] = UInt8(generator.next() % 4) }
            let (steps, left) = run(&handshake, bytes, chunk: 1 + Int(generator.next() % 64))
            if steps.last == .needMore {
                // Waiting: what is held is at most one greeting + auth + request, or a SOCKS4 request.
                #expect(left.count <= 2 + 255 + 3 + 255 + 255 + 7, "round \(round): \(left.count) bytes held")
            }
        }
    }
}

/// A small deterministic generator for the fuzz rounds.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

import TunnelConfig

@Suite("DynamicForward: which proxy ports get the no-password warning")
struct OpenProxyWarningTests {
    func spec(_ bind: BindAddress, socket: String? = nil) -> DynamicForwardSpec {
        DynamicForwardSpec(bind: bind, listenPort: socket == nil ? 1080 : 0, location: SourceLocation(file: "t", line: 1), listenSocketPath: socket)
    }

    @Test("every interface or a non-loopback address without a password: warned; loopback, a socket, or a password: not")
    func warning() {
        #expect(HostTunnel.isOpenProxy(spec(.any), credentials: nil))
        #expect(HostTunnel.isOpenProxy(spec(.address("0.0.0.0")), credentials: nil))
        #expect(HostTunnel.isOpenProxy(spec(.address("192.168.1.5")), credentials: nil))
        #expect(!HostTunnel.isOpenProxy(spec(.any), credentials: ProxyCredentials(user: "a", password: "b")))
        #expect(!HostTunnel.isOpenProxy(spec(.loopback), credentials: nil))
        #expect(!HostTunnel.isOpenProxy(spec(.address("127.0.0.1")), credentials: nil))
        #expect(!HostTunnel.isOpenProxy(spec(.address("::1")), credentials: nil))
        #expect(!HostTunnel.isOpenProxy(spec(.loopback, socket: "/tmp/p.sock"), credentials: nil))
    }
}
