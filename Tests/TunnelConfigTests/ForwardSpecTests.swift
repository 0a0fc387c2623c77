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
        ("LocalForward http db:80", "service names are not supported"),
        ("LocalForward 8080 db:http", "service names are not supported"),
        ("LocalForward 0 db:80", "bad listen port \"0\""),
        ("LocalForward 8080 db:0", "bad target port \"0\""),
        ("LocalForward 65536 db:80", "bad listen port \"65536\""),
        ("LocalForward 8080 db:99999999999999999999999", "bad target port"),
        ("LocalForward /tmp/sock db:80", "unix socket forwards are not supported"),
        ("LocalForward 8080 /run/db.sock", "unix socket forwards are not supported"),
        ("LocalForward 8080 db/5432", "unix socket forwards are not supported"),
        ("LocalForward 8080 [/run/x]:1", "unix socket forwards are not supported"),
        ("LocalForward 8080 db", "bad forwarding specification"),
        ("LocalForward a:b:c:8080 db:80", "too many"),
        ("LocalForward 8080 db:80 extra", "too many arguments"),
        ("LocalForward [::1:8080 db:80", "missing \"]\""),
        ("LocalForward [::1]x:8080 db:80", "after \"]\""),
        ("LocalForward 8080 :80", "missing target host"),
        ("LocalForward ${NOPE} db:80", "environment variable ${NOPE} is not set"),
        ("RemoteForward 9000 db:0", "bad target port"),
        ("RemoteForward 9000 /sock", "unix socket"),
        ("DynamicForward 0", "bad listen port \"0\""),
        ("DynamicForward 1080 1081", "too many arguments"),
        ("DynamicForward a:b:1080", "bad listener"),
    ]

    @Test(arguments: badForms)
    func badForwardsAreErrors(_ line: String, _ expected: String) {
        let found = errors("Host h", line)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("t.conf:2: ") == true, "\(found)")
        #expect(found.first?.contains(expected) == true, "\(found)")
    }
}
