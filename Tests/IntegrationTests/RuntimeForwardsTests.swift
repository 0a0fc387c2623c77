// Forwards added to and removed from a running HostTunnel (what a reload does to a host whose only change is its
// forwards), against a real sshd: they work on the session that is up and on the next one after a reconnect.
import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

@Suite("Forwards added and removed while a tunnel runs, against a real sshd", .serialized)
struct RuntimeForwardsTests {
    @Test("local and remote (port 0) forwards added while running serve now and after sshd restarts; removed ones stop; counts follow each forward")
    func addedForwardsSurviveReconnect() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var settings = settings(sshd)
        settings.reconnectDelay = 0.2
        settings.reconnectMaxDelay = 1
        let first = ForwardSpec(bind: .address("127.0.0.1"), listenPort: try freeTCPPortOutsideEphemeralRange(), targetHost: "127.0.0.1",
                                targetPort: echo.port, location: SourceLocation(file: "test", line: 1))
        let added = ForwardSpec(bind: .address("127.0.0.1"), listenPort: try freeTCPPortOutsideEphemeralRange(), targetHost: "127.0.0.1",
                                targetPort: echo.port, location: SourceLocation(file: "test", line: 2))
        let remote = RemoteForwardTests.spec(port: 0, target: echo.port, line: 3)
        let tunnel = HostTunnel(settings: settings, localForwards: [first], eventLoop: group.next(), logger: testLogger)
        try await tunnel.keepUp { _ in }
        try await onOwnThread { [tunnel] in
            try waitUntil(timeout: 20, "the first session") { tunnel.counters.snapshot.sessionsEstablished == 1 }
        }
        try await tunnel.addForward(added)
        await tunnel.addForward(remote)
        try await onOwnThread { [tunnel] in
            let payload = Array("through an added forward".utf8)
            #expect(try TCPTestClient.connect(port: added.listenPort).exchange(payload) == payload)
            let remotePort = try RemoteForwardTests.listeningPort(tunnel, 0)
            #expect(try TCPTestClient.connect(port: remotePort).exchange(payload) == payload)
            #expect(tunnel.counters.snapshot.sessionsEstablished == 1, "added on the running session")

            try sshd.restart()
            try waitUntil(timeout: 30, "a second session") { tunnel.counters.snapshot.sessionsEstablished == 2 }
            #expect(try TCPTestClient.connect(port: added.listenPort).exchange(payload) == payload, "local, after the reconnect")
            let again = try RemoteForwardTests.listeningPort(tunnel, 0, timeout: 40)
            #expect(try TCPTestClient.connect(port: again).exchange(payload) == payload, "remote, asked for by the new session")

            // Each forward's counts, by its stable id (the remote one's port 0, whatever the server chose).
            var counts: [String: TunnelCounters.ForwardCounts] = [:]
            try waitUntil(timeout: 10, "the connections to end in the counts") {
                counts = Dictionary(tunnel.status.forwards.map { ($0.id, $0.counts) }, uniquingKeysWith: { a, _ in a })
                return counts.values.allSatisfy { $0.connectionsActive == 0 } && counts["R127.0.0.1:0"]?.connectionsAccepted == 2
            }
            #expect(tunnel.status.forwards.map(\.id) == ["L127.0.0.1:\(first.listenPort)", "L127.0.0.1:\(added.listenPort)", "R127.0.0.1:0"])
            #expect(counts["L127.0.0.1:\(added.listenPort)"]?.connectionsAccepted == 2)
            #expect(counts["L127.0.0.1:\(added.listenPort)"]?.bytesSent == 2 * payload.count)
            #expect(counts["L127.0.0.1:\(first.listenPort)"]?.connectionsAccepted == 0)
        }
        await tunnel.removeForwards(local: [added], dynamic: [])
        await tunnel.removeForwards(remote: [remote])
        try await onOwnThread { [tunnel] in
            #expect(!TCPTestClient.isAccepting(port: added.listenPort), "the removed local forward's port is closed")
            #expect(tunnel.remoteForwardStatus.isEmpty && tunnel.localForwards == [first])
            #expect(tunnel.status.forwards.map(\.id) == ["L127.0.0.1:\(first.listenPort)"])
            let payload = Array("the first forward".utf8)
            let connection = try TCPTestClient.connect(port: first.listenPort)
            #expect(try connection.exchange(payload) == payload)
        }
        await tunnel.stop()
        try await group.shutdownGracefully()
    }
}
