import Testing
@testable import TunnelConfig

@Suite("LocalForward, RemoteForward, DynamicForward")
struct ForwardSpecTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var line: String
        var bind: BindAddress
        var listen: Int
        var host: String
        var port: Int
        var testDescription: String { line }
    }

    static let localForms: [Case] = [
        Case(line: "LocalForward 8080 db:5432", bind: .loopback, listen: 8080, host: "db", port: 5432),
        Case(line: "LocalForward 127.0.0.1:8080 127.0.0.1:80", bind: .address("127.0.0.1"), listen: 8080, host: "127.0.0.1", port: 80),
        Case(line: "LocalForward localhost:8080 db:1", bind: .loopback, listen: 8080, host: "db", port: 1),
        Case(line: "LocalForward *:8080 db:1", bind: .any, listen: 8080, host: "db", port: 1),
        Case(line: "LocalForward :8080 db:1", bind: .any, listen: 8080, host: "db", port: 1),
        Case(line: "LocalForward [::1]:8080 [fe80::1]:80", bind: .address("::1"), listen: 8080, host: "fe80::1", port: 80),
        Case(line: "LocalForward [::]:8080 db:65535", bind: .address("::"), listen: 8080, host: "db", port: 65535),
        Case(line: "LocalForward 10.0.0.1:1 [db.internal]:22", bind: .address("10.0.0.1"), listen: 1, host: "db.internal", port: 22),
        Case(line: "LocalForward=8080 db:5432", bind: .loopback, listen: 8080, host: "db", port: 5432),
        Case(line: "localforward \"8080\" \"db:5432\"", bind: .loopback, listen: 8080, host: "db", port: 5432),
        Case(line: "LocalForward ${PORT} db:80", bind: .loopback, listen: 8443, host: "db", port: 80),
        // OpenSSH joins the two arguments with ':' before splitting, so this odd form is valid.
        Case(line: "LocalForward 127.0.0.1:8080:db 5432", bind: .address("127.0.0.1"), listen: 8080, host: "db", port: 5432),
    ]

    @Test(arguments: localForms)
    func localForwardForms(_ c: Case) throws {
        let config = try parse("Host h", c.line)
        let forwards = config.resolve(host: "h").localForwards
        #expect(forwards == [ForwardSpec(bind: c.bind, listenPort: c.listen, targetHost: c.host, targetPort: c.port,
                                         location: SourceLocation(file: "t.conf", line: 2))])
    }

    @Test func descriptions() throws {
        let config = try parse(
            "LocalForward 127.0.0.1:8080 127.0.0.1:80",
            "LocalForward [::1]:8080 db:5432",
            "LocalForward *:8080 [fe80::1]:80",
            "LocalForward 9000 web:80",
            "DynamicForward 1080",
            "RemoteForward 9000 localhost:3000",
            "RemoteForward *:0"
        )
        let host = config.resolve(host: "x")
        #expect(host.localForwards.map(\.description) == [
            "127.0.0.1:8080 -> 127.0.0.1:80", "[::1]:8080 -> db:5432", "*:8080 -> [fe80::1]:80", "localhost:9000 -> web:80",
        ])
        #expect(host.dynamicForwards.map(\.description) == ["localhost:1080 -> socks"])
        #expect(host.remoteForwards.map(\.description) == ["remote localhost:9000 -> localhost:3000", "remote *:0 -> socks"])
    }

    @Test func gatewayPortsDecidesTheDefaultBind() throws {
        let config = try parse(
            "Host open", "GatewayPorts yes",
            "Host *", "LocalForward 8080 db:1", "LocalForward localhost:8081 db:1", "DynamicForward 1080"
        )
        let open = config.resolve(host: "open")
        #expect(open.gatewayPorts)
        #expect(open.localForwards.map(\.bind) == [.any, .loopback])
        #expect(open.dynamicForwards.map(\.bind) == [.any])
        let closed = config.resolve(host: "closed")
        #expect(closed.localForwards.map(\.bind) == [.loopback, .loopback])
    }

    @Test func remoteAndDynamicForms() throws {
        let host = try parse(
            "RemoteForward 9000 localhost:3000",
            "RemoteForward [::1]:0 [::1]:22",
            "RemoteForward 1080",
            "DynamicForward 127.0.0.1:1080",
            "DynamicForward [::1]:1081"
        ).resolve(host: "x")
        #expect(host.remoteForwards.map(\.target) == [.host("localhost", port: 3000), .host("::1", port: 22), .socks])
        #expect(host.remoteForwards.map(\.listenPort) == [9000, 0, 1080])
        #expect(host.remoteForwards.map(\.bind) == [.loopback, .address("::1"), .loopback])
        #expect(host.dynamicForwards.map(\.bind) == [.address("127.0.0.1"), .address("::1")])
        #expect(host.dynamicForwards.map(\.listenPort) == [1080, 1081])
    }

    static let badForms: [(String, String)] = [
        ("LocalForward 8080", "missing target"),
        ("LocalForward 80x db:80", "bad port \"80x\""),
        ("LocalForward 8080 db:80x", "bad port \"80x\""),
        ("LocalForward 0 db:80", "bad listen port \"0\""),
        ("LocalForward 8080 db:0", "bad target port \"0\""),
        ("LocalForward 65536 db:80", "bad listen port \"65536\""),
        ("LocalForward 8080 db:99999999999999999999999", "bad target port"),
        ("LocalForward 8080 db", "bad forwarding specification"),
        ("LocalForward a:b:c:8080 db:80", "too many"),
        ("LocalForward 8080 db:80 extra", "too many arguments"),
        ("LocalForward [::1:8080 db:80", "missing \"]\""),
        ("LocalForward [::1]x:8080 db:80", "after \"]\""),
        ("LocalForward ${NOPE} db:80", "environment variable ${NOPE} is not set"),
        ("RemoteForward 9000 db:0", "bad target port"),
        ("DynamicForward 0", "bad listen port \"0\""),
        ("DynamicForward 1080 1081", "too many arguments"),
        ("DynamicForward a:b:1080", "bad forwarding specification"),
        ("LocalForward /a.sock b:/c.sock", "bad port"),
        ("LocalForward 8080 /\(String(repeating: "s", count: 120))", "too long"),
    ]

    @Test(arguments: badForms)
    func badForwardsAreErrors(_ line: String, _ expected: String) {
        let found = errors("Host h", line)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("t.conf:2: ") == true, "\(found)")
        #expect(found.first?.contains(expected) == true, "\(found)")
    }

    // MARK: Unix-socket forwards (OpenSSH's positional rules: a field with "/" outside brackets is a path)

    @Test func socketForwardsAreRead() throws {
        let config = try parse(
            "Host h",
            "  LocalForward /path/local.sock host:80",
            "  LocalForward 8080 /var/run/docker.sock",
            "  LocalForward 127.0.0.1:8081 /var/run/b.sock",
            "  LocalForward /a.sock /b.sock",
            "  LocalForward 8082 db/5432",
            "  LocalForward 8083 [/run/x]:1",
            "  RemoteForward /run/user/1000/gnupg/S.gpg-agent /home/u/.gnupg/S.gpg-agent.extra",
            "  RemoteForward /r.sock localhost:22",
            "  RemoteForward 9000 /l.sock",
            "  RemoteForward /rd.sock",
            "  DynamicForward /tmp/socks.sock",
            "  StreamLocalBindMask 0077",
            "  StreamLocalBindUnlink yes"
        )
        let host = config.resolve(host: "h")
        let at = { (line: Int) in SourceLocation(file: "t.conf", line: line) }
        #expect(host.localForwards == [
            ForwardSpec(listener: .unixSocket(path: "/path/local.sock"), target: .tcp(host: "host", port: 80), location: at(2)),
            ForwardSpec(listener: .tcp(bind: .loopback, port: 8080), target: .unixSocket(path: "/var/run/docker.sock"), location: at(3)),
            ForwardSpec(listener: .tcp(bind: .address("127.0.0.1"), port: 8081), target: .unixSocket(path: "/var/run/b.sock"), location: at(4)),
            ForwardSpec(listener: .unixSocket(path: "/a.sock"), target: .unixSocket(path: "/b.sock"), location: at(5)),
            // A relative path is a path too; a bracketed field never is.
            ForwardSpec(listener: .tcp(bind: .loopback, port: 8082), target: .unixSocket(path: "db/5432"), location: at(6)),
            ForwardSpec(bind: .loopback, listenPort: 8083, targetHost: "/run/x", targetPort: 1, location: at(7)),
        ])
        #expect(host.localForwards.map(\.isUnixSocket) == [true, true, true, true, true, false])
        #expect(host.remoteForwards.map(\.description) == [
            "remote /run/user/1000/gnupg/S.gpg-agent -> /home/u/.gnupg/S.gpg-agent.extra",
            "remote /r.sock -> localhost:22",
            "remote localhost:9000 -> /l.sock",
            "remote /rd.sock -> socks",
        ])
        let allSockets = host.remoteForwards.allSatisfy { $0.isUnixSocket }
        #expect(allSockets)
        #expect(host.remoteForwards[0].listenSocketPath == "/run/user/1000/gnupg/S.gpg-agent")
        #expect(host.remoteForwards[0].target == .unixSocket("/home/u/.gnupg/S.gpg-agent.extra"))
        #expect(host.dynamicForwards.map(\.listenSocketPath) == ["/tmp/socks.sock"])
        #expect(host.unixSocketForwardCount == 10)
        #expect(host.streamLocalBindMask == 0o077)
        #expect(host.streamLocalBindUnlink)
    }

    /// The TCP views the engine reads stay as they were for TCP forwards,
    /// and read as placeholders (not crashes) for socket sides.
    @Test func tcpViewsOfSocketForwards() throws {
        var tcp = ForwardSpec(bind: .any, listenPort: 1, targetHost: "db", targetPort: 2, location: SourceLocation(file: "f", line: 1))
        #expect(!tcp.isUnixSocket)
        tcp.listenPort = 3
        tcp.targetHost = "web"
        #expect(tcp.listener == .tcp(bind: .any, port: 3))
        #expect(tcp.target == .tcp(host: "web", port: 2))
        let socket = ForwardSpec(listener: .unixSocket(path: "/l"), target: .unixSocket(path: "/t"), location: SourceLocation(file: "f", line: 1))
        #expect(socket.isUnixSocket)
        #expect(socket.listenPort == 0 && socket.targetPort == 0 && socket.bind == .loopback)
        #expect(socket.targetHost == "/t")
        #expect(socket.description == "/l -> /t")
    }

    @Test func streamLocalBindDefaultsAndBadMasks() throws {
        let host = try parse("Host h").resolve(host: "h")
        #expect(host.streamLocalBindMask == 0o177)
        #expect(!host.streamLocalBindUnlink)
        let seven = try parse("StreamLocalBindMask 7").resolve(host: "h")
        #expect(seven.streamLocalBindMask == 7)
        #expect(errors("StreamLocalBindMask 999") == ["t.conf:1: StreamLocalBindMask: bad mask \"999\" (expected octal permission bits, 0 to 0777)"])
        #expect(errors("StreamLocalBindMask 01000").count == 1)
        #expect(errors("StreamLocalBindUnlink maybe").count == 1)
    }

    @Test("TunnelProxyAuth user:password (tunnel's own keyword): first value wins, none unsets, never printed")
    func proxyAuth() throws {
        let config = try parse(
            "IgnoreUnknown Tunnel*",
            "Host h",
            "  DynamicForward 1080",
            "  TunnelProxyAuth alice:pa:ss",
            "Host n",
            "  TunnelProxyAuth none",
            "Host *",
            "  TunnelProxyAuth bob:x"
        )
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(config.resolve(host: "h").proxyAuth == ProxyAuth(user: "alice", password: "pa:ss"))
        #expect(config.resolve(host: "n").proxyAuth == nil)
        #expect(config.resolve(host: "other").proxyAuth == ProxyAuth(user: "bob", password: "x"))
        #expect(!"\(ProxyAuth(user: "alice", password: "pa:ss"))".contains("pa:ss"))
    }

    @Test("TunnelProxyAuth without IgnoreUnknown warns as tunnel's other keywords do; a bad value is an error that does not show it")
    func proxyAuthChecks() throws {
        let config = try parse("Host h", "  TunnelProxyAuth alice:x")
        #expect(config.resolve(host: "h").proxyAuth == ProxyAuth(user: "alice", password: "x"))
        #expect(config.warnings.map(\.description) == [
            "t.conf:2: TunnelProxyAuth is tunnel's own keyword, which ssh rejects: put `IgnoreUnknown Tunnel*` before the first Host line so `ssh -F` accepts this file",
        ])
        #expect(errors("IgnoreUnknown Tunnel*", "TunnelProxyAuth secretwithoutcolon") == ["t.conf:2: TunnelProxyAuth: bad value (expected user:password, or none; the value is not shown here)"])
        #expect(errors("IgnoreUnknown Tunnel*", "TunnelProxyAuth :nouser").count == 1)
    }
}
