import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// The listeners of a config that names no address are bound to loopback only: nothing on another interface can
/// reach a forward or the proxy (OpenSSH's default, kept unless GatewayPorts or an address says otherwise).
@Suite("Safe defaults against a real sshd", .serialized)
struct SafeDefaultsIntegrationTests {
    @Test("LocalForward and DynamicForward without an address bind 127.0.0.1 (and ::1) and nothing else")
    func listenersWithoutAnAddressAreLoopbackOnly() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let forwardPort = try freeTCPPort(), proxyPort = try freeTCPPort()
        let config = try TunnelConfigFile.parse(text: """
            Host safe
              LocalForward \(forwardPort) 127.0.0.1:\(echo.port)
              DynamicForward \(proxyPort)
            """, file: "safe.conf")
        let host = config.resolve(host: "safe")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let tunnel = HostTunnel(settings: settings(sshd), localForwards: host.localForwards,
                                dynamicForwards: host.dynamicForwards, eventLoop: group.next(), logger: testLogger)
        try await withStarted(tunnel, on: group) { _ in
            let bound = tunnel.boundAddresses
            let loopback = bound.filter { $0.hasPrefix("127.0.0.1:") || $0.hasPrefix("[::1]:") }
            #expect(loopback == bound, "only loopback addresses bound: \(bound)")
            #expect(bound.contains("127.0.0.1:\(forwardPort)") && bound.contains("127.0.0.1:\(proxyPort)"), "\(bound)")
            // And it is the forward: bytes go through.
            let client = try TCPTestClient.connect(port: forwardPort)
            try client.send(Array("loopback".utf8))
            client.shutdownWrite()
            #expect(try client.receiveAll(timeout: 20) == Array("loopback".utf8))
        }
    }
}
