import Digests
import Foundation
import NIOPosix
import SSH2
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Nothing a session does while it connects may stall the other sessions on its event loop: a huge hashed
/// known_hosts and an encrypted key (bcrypt, decrypted twice by libssh2 1.10) are worked on off the loop.
@Suite("The event loop is never blocked", .serialized)
struct EventLoopStallTests {
    @Test("a host with a 20,000-line hashed known_hosts and an encrypted key connects while another host on the same loop carries round trips; those never stall")
    func slowSetupDoesNotStallOtherHosts() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)  // both hosts on one loop

        let busy = makeTunnel(sshd, targets: [echo.port], group: group)
        _ = try await busy.start()
        let port = try boundPorts(busy)[0]

        // The slow host: every known_hosts entry hashed (each costs an HMAC per lookup), the real one last, and a
        // passphrase-protected key.
        let knownHosts = sshd.directory + "/big_known_hosts"
        try bigKnownHosts(lines: 20_000, last: sshd.knownHostsLine).write(toFile: knownHosts, atomically: true, encoding: .utf8)
        let key = try sshd.makeClientKey(type: "ed25519", passphrase: "stall test")
        var slowSettings = settings(sshd, identity: key,
                                    policy: HostKeyPolicy(mode: .strict, knownHostsFiles: [knownHosts]))
        slowSettings.passphrases = [key: "stall test"]
        let slow = HostTunnel(settings: slowSettings, localForwards: [], eventLoop: group.next(), logger: testLogger)

        // Round trips on the busy host, timed, for as long as the slow host takes to come up.
        let client = try TCPTestClient.connect(port: port)
        let probe = StallProbe()
        let prober = Thread {
            let payload = [UInt8](repeating: 0x61, count: 64)
            while !probe.isDone {
                let start = Date()
                guard (try? client.send(payload)) != nil,
                      (try? client.receive(exactly: payload.count, timeout: 10)) == payload else {
                    probe.fail()
                    return
                }
                probe.record(Date().timeIntervalSince(start))
            }
        }
        prober.start()
        let started = Date()
        _ = try await slow.start()
        let setupSeconds = Date().timeIntervalSince(started)
        probe.finish()
        try waitUntil(timeout: 15, "the round-trip prober to stop") { probe.hasStopped }

        let result = probe.result
        #expect(!result.failed, "a round trip on the busy host failed")
        #expect(result.count > 10, "only \(result.count) round trips while the slow host connected for \(setupSeconds) s")
        // Parsing that file on the loop took over a second per connect; decrypting the key 0.2 s, twice. A round
        // trip that waits for either shows up here.
        #expect(result.longest < 0.25, "a round trip took \(result.longest) s while another host was connecting (setup took \(setupSeconds) s)")

        client.close()
        await slow.stop()
        await busy.stop()
        try await group.shutdownGracefully()
    }

    private func bigKnownHosts(lines: Int, last: String) -> String {
        let random = TestData.pseudoRandom(count: lines * 40 + 51, seed: 7)
        var text = ""
        text.reserveCapacity(lines * 140)
        let keyBlob = Base64.encode(Array(random[(lines * 40)...]))
        for line in 0..<lines {
            let salt = Base64.encode(Array(random[(line * 40)..<(line * 40 + 20)]))
            let hash = Base64.encode(Array(random[(line * 40 + 20)..<(line * 40 + 40)]))
            text += "|1|\(salt)|\(hash) ssh-ed25519 \(keyBlob)\n"
        }
        return text + last + "\n"
    }
}

/// Round-trip times from the prober thread, read by the test.
private final class StallProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false, stopped = false, failed = false
    private var longest = 0.0, count = 0

    var isDone: Bool { lock.withLock { done } }
    var hasStopped: Bool { lock.withLock { stopped } }
    var result: (longest: Double, count: Int, failed: Bool) { lock.withLock { (longest, count, failed) } }

    func record(_ seconds: Double) {
        lock.withLock {
            longest = max(longest, seconds)
            count += 1
            if done { stopped = true }
        }
    }

    func fail() { lock.withLock { failed = true; stopped = true } }
    func finish() { lock.withLock { done = true } }
}

/// After a burst from the server only recently busy channels are asked for input (asking costs a cache miss per
/// channel); everything else must still arrive, found by the sweeps.
@Suite("Input for idle connections is never missed", .serialized)
struct IdleInputTests {
    @Test("20 idle connections get an unasked message and EOF from their servers while another connection is busy")
    func pushesToIdleConnections() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let pusher = try TCPTestServer(behavior: .pushAfter(delay: 1.0, message: "pushed\n"))
        try await withTunnel(sshd, forwards: [echo.port, pusher.port]) { _, ports in
            // Open the idle ones first; they stay silent for a second, long past the 50 ms of being "busy".
            let idle = try (0..<20).map { _ in try TCPTestClient.connect(port: ports[1]) }
            let busy = try TCPTestClient.connect(port: ports[0])
            let stop = Date().addingTimeInterval(2.5)
            let payload = [UInt8](repeating: 0x62, count: 64)
            while Date() < stop {
                try busy.send(payload)
                #expect(try busy.receive(exactly: payload.count, timeout: 10) == payload)
            }
            for (index, connection) in idle.enumerated() {
                // Message and EOF: receiveAll returns only after the EOF crossed the tunnel.
                let got = String(decoding: try connection.receiveAll(timeout: 10), as: UTF8.self)
                #expect(got == "pushed\n", "idle connection \(index) got \(got.debugDescription)")
                connection.close()
            }
            busy.close()
        }
    }

    @Test("a message to the only, long idle, connection arrives with nothing else going on")
    func pushWithNoOtherTraffic() async throws {
        let sshd = try SSHDFixture()
        let pusher = try TCPTestServer(behavior: .pushAfter(delay: 0.5, message: "alone\n"))
        try await withTunnel(sshd, forwards: [pusher.port]) { _, ports in
            let connection = try TCPTestClient.connect(port: ports[0])
            let got = String(decoding: try connection.receiveAll(timeout: 10), as: UTF8.self)
            #expect(got == "alone\n")
            connection.close()
        }
    }
}
