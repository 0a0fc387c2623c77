import Foundation
import NIOPosix
import Testing
import TunnelConfig
@testable import TunnelEngine
import TunnelTestSupport

/// Receive windows against a real sshd over a long link (a relay that adds a 20 ms round trip, so the window is what
/// limits a download and growing pays): fast downloads grow their window, never past the cap, all within the
/// budget, and give it back when they end. (Clients that read nothing: `ReceiveWindowUpTests`, on the binary.)
@Suite("Receive windows against a real sshd", .serialized)
struct ReceiveWindowIntegrationTests {
    static let kib = 1024

    /// 10 ms each way between tunnel and sshd: a 256 KiB window then moves about 13 MB/s, 1 MiB about 50.
    static let oneWayDelay = 0.010

    /// A tunnel with small limits, so a short download shows every rule, reaching `sshd` through `relay`.
    func tunnel(_ sshd: SSHDFixture, via relay: TCPTestServer, targets: [Int], cap: Int, budget: WindowBudget,
                group: MultiThreadedEventLoopGroup) throws -> HostTunnel {
        var settings = settings(sshd)
        // Through the relay the server is known under the relay's port.
        let knownHosts = sshd.directory + "/known_hosts-relay-\(relay.port)"
        try "[\(sshd.host)]:\(relay.port) \(sshd.hostPublicKeyLine)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        settings.port = relay.port
        settings.hostKeyPolicy = HostKeyPolicy(mode: .strict, knownHostsFiles: [knownHosts])
        settings.receiveWindow = ReceiveWindowLimits(base: 256 * Self.kib, cap: cap, budget: budget, proof: 2 << 20)
        let specs = targets.enumerated().map { index, port in
            ForwardSpec(bind: .address("127.0.0.1"), listenPort: 0, targetHost: "127.0.0.1", targetPort: port,
                        location: SourceLocation(file: "test", line: index + 1))
        }
        return HostTunnel(settings: settings, localForwards: specs, eventLoop: group.next(), logger: testLogger)
    }

    /// Downloads everything from `port` in each of `count` parallel clients while sampling `budget`; returns the
    /// byte counts and the most the budget held at any sample.
    func download(port: Int, clients count: Int, budget: WindowBudget) async throws -> (sizes: [Int], peak: Int) {
        try await onOwnThread {
            let peak = Guarded(0)
            let done = Guarded(false)
            let sampler = Thread {
                while !done.withLock({ $0 }) {
                    let now = budget.inUse
                    peak.withLock { $0 = max($0, now) }
                    Thread.sleep(forTimeInterval: 0.001)
                }
            }
            sampler.start()
            defer { done.withLock { $0 = true } }
            let sizes = Guarded([Int](repeating: 0, count: count))
            DispatchQueue.concurrentPerform(iterations: count) { index in
                guard let connection = try? TCPTestClient.connect(port: port),
                      let bytes = try? connection.receiveAll(timeout: 60) else { return }
                sizes.withLock { $0[index] = bytes.count }
            }
            return (sizes.withLock { $0 }, peak.withLock { $0 })
        }
    }

    @Test("a client that keeps up grows its window, never past the cap, and gives it back at the end")
    func growsToTheCapAndReleases() async throws {
        let sshd = try SSHDFixture()
        let total = 24_000_000
        let source = try TCPTestServer(behavior: .source(bytes: total))
        let budget = WindowBudget(total: 64 << 20)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let relay = try TCPTestServer(behavior: .delayRelay(targetPort: sshd.port, oneWayDelay: Self.oneWayDelay))
        defer { relay.stop() }
        let tunnel = try tunnel(sshd, via: relay, targets: [source.port], cap: 1 << 20, budget: budget, group: group)
        try await withStarted(tunnel, on: group) { _ in
            let (sizes, peak) = try await download(port: try boundPorts(tunnel)[0], clients: 1, budget: budget)
            #expect(sizes == [total])
            #expect(peak > 0, "the window never grew beyond its base for a client that keeps up")
            #expect(peak <= (1 << 20) - 256 * Self.kib, "one connection held \(peak) bytes beyond its base: over the cap")
            try await waitUntilAsync(timeout: 10, "the closed connection to give its window back") { budget.inUse == 0 }
            // The next connection of the same session grows as well.
            let (again, peakAgain) = try await download(port: try boundPorts(tunnel)[0], clients: 1, budget: budget)
            #expect(again == [total])
            #expect(peakAgain > 0, "a second download through the same session never grew its window")
            try await waitUntilAsync(timeout: 10, "the second connection to give its window back") { budget.inUse == 0 }
        }
    }

    @Test("parallel fast downloads share the budget: together they never hold more")
    func parallelDownloadsStayWithinTheBudget() async throws {
        let sshd = try SSHDFixture()
        let total = 12_000_000
        let source = try TCPTestServer(behavior: .source(bytes: total))
        let budget = WindowBudget(total: 1 << 20)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let relay = try TCPTestServer(behavior: .delayRelay(targetPort: sshd.port, oneWayDelay: Self.oneWayDelay))
        defer { relay.stop() }
        let tunnel = try tunnel(sshd, via: relay, targets: [source.port], cap: 4 << 20, budget: budget, group: group)
        try await withStarted(tunnel, on: group) { _ in
            let (sizes, peak) = try await download(port: try boundPorts(tunnel)[0], clients: 4, budget: budget)
            #expect(sizes == [Int](repeating: total, count: 4), "every download arrives whole")
            #expect(peak > 0, "no window grew: nothing was shared")
            #expect(peak <= 1 << 20, "the connections together held \(peak) bytes beyond their base: over the budget")
            try await waitUntilAsync(timeout: 10, "the closed connections to give their windows back") { budget.inUse == 0 }
        }
    }
}

/// A value shared between threads of a test (a sampler and downloads; a task and the test).
final class Guarded<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    @discardableResult
    func withLock<R>(_ body: (inout Value) -> R) -> R { lock.withLock { body(&value) } }
}
