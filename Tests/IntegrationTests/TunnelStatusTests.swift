import Foundation
import NIOPosix
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// `HostTunnel.status` against a real sshd: the state with the session's facts, and each forward's own counts
/// (a connection through one forward counts there only; the totals are the sum).
@Suite("HostTunnel.status: state and per-forward counts", .serialized)
struct TunnelStatusTests {
    @Test("bytes and connections are counted on the forward they went through: two local forwards and a remote one")
    func perForwardCounts() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let localA = try freeTCPPort(), localB = try freeTCPPort()
        let location = SourceLocation(file: "test", line: 1)
        var settings = settings(sshd)
        settings.remoteForwards = [RemoteForwardSpec(bind: .address("127.0.0.1"), listenPort: try freeTCPPort(),
                                                     target: .host("127.0.0.1", port: echo.port), location: location)]
        let tunnel = HostTunnel(settings: settings,
                                localForwards: [ForwardSpec(bind: .loopback, listenPort: localA, targetHost: "127.0.0.1", targetPort: echo.port, location: location),
                                                ForwardSpec(bind: .loopback, listenPort: localB, targetHost: "127.0.0.1", targetPort: echo.port, location: location)],
                                eventLoop: group.next(), logger: testLogger)
        #expect(tunnel.status.state == .connecting)
        try await withStarted(tunnel, on: group) { _ in
            try await onOwnThread {
                let status = tunnel.status
                guard case .up(let session) = status.state else {
                    Issue.record("not up: \(status.state)")
                    return
                }
                #expect(session.server == "127.0.0.1:\(sshd.port)")
                #expect(session.hostKeyFingerprint == sshd.hostKeyFingerprint)
                #expect(!session.algorithms.cipherClientToServer.isEmpty && !session.algorithms.macServerToClient.isEmpty)

                let a = TestData.pseudoRandom(count: 100_000, seed: 1)
                #expect(try TCPTestClient.connect(port: localA).exchange(a) == a)
                #expect(try TCPTestClient.connect(port: localA).exchange(a) == a)
                let remotePort = try RemoteForwardTests.listeningPort(tunnel, 0)
                let r = TestData.pseudoRandom(count: 30_000, seed: 2)
                #expect(try TCPTestClient.connect(port: remotePort).exchange(r) == r)
                try waitUntil(timeout: 10, "every connection to close") { tunnel.counters.snapshot.connectionsActive == 0 }

                let forwards = tunnel.status.forwards
                #expect(forwards.map(\.kind) == [.local, .local, .remote])
                #expect(forwards[0].listen == "127.0.0.1:\(localA)" && forwards[0].target == "127.0.0.1:\(echo.port)")
                #expect(forwards[0].counts.connectionsAccepted == 2 && forwards[0].counts.bytesSent == 200_000 && forwards[0].counts.bytesReceived == 200_000)
                #expect(forwards[1].counts == TunnelCounters.ForwardCounts(), "nothing went through the second forward")
                #expect(forwards[2].listen == "remote 127.0.0.1:\(remotePort)")
                #expect(forwards[2].counts.connectionsAccepted == 1)
                #expect(forwards[2].counts.bytesSent == 30_000 && forwards[2].counts.bytesReceived == 30_000)
                let totals = tunnel.status.totals
                #expect(totals.bytesSent == 230_000 && totals.connectionsAccepted == 3, "totals are kept: \(totals)")
                #expect(tunnel.status.reconnects == 0 && tunnel.status.lastError == nil)
            }
        }
        #expect(tunnel.status.state == .stopped)
    }
}
