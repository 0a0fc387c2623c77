import Testing
@testable import TunnelConfig

/// As in OpenSSH (channels.c): a listener written without an address is reachable from this machine only; other
/// machines reach it only when the config says so, with `GatewayPorts yes` or an explicit address.
@Suite("Safe defaults: where forwards listen")
struct ForwardBindDefaultsTests {
    @Test("no bind address: loopback for LocalForward and DynamicForward")
    func loopbackByDefault() throws {
        let host = try parse("Host h", "  LocalForward 8080 db:80", "  DynamicForward 1080").resolve(host: "h")
        #expect(host.localForwards.map(\.bind) == [.loopback])
        #expect(host.dynamicForwards.map(\.bind) == [.loopback])
    }

    @Test("GatewayPorts yes opens the listeners without an address, and only those")
    func gatewayPorts() throws {
        let host = try parse("Host h", "  GatewayPorts yes", "  LocalForward 8080 db:80", "  LocalForward localhost:8081 db:81",
                             "  DynamicForward 1080", "  DynamicForward 127.0.0.1:1081").resolve(host: "h")
        #expect(host.localForwards.map(\.bind) == [.any, .loopback])
        #expect(host.dynamicForwards.map(\.bind) == [.any, .address("127.0.0.1")])
    }

    @Test("an explicit address is the config's choice, GatewayPorts or not")
    func explicitAddress() throws {
        let host = try parse("Host h", "  LocalForward *:8080 db:80", "  LocalForward 10.1.2.3:8081 db:81",
                             "  DynamicForward :1080").resolve(host: "h")
        #expect(host.localForwards.map(\.bind) == [.any, .address("10.1.2.3")])
        #expect(host.dynamicForwards.map(\.bind) == [.any])
    }
}
