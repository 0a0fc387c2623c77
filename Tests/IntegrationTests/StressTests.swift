import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import SSH2
import Testing
import TunnelConfig
import TunnelEngine
import TunnelTestSupport

/// Adversarial load against a real sshd: resets, churn, a server that dies or freezes mid-transfer, stop() under
/// load, targets that close at once or never read, several tunnels in one process. Every wait is bounded.
@Suite("Stress: resets, churn, dying servers, backpressure", .serialized)
struct StressTests {

    // MARK: - One connection's failure stays local

    @Test("clients that reset mid-transfer do not disturb the others, which complete intact")
    func resetsMidTransfer() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let source = try TCPTestServer(behavior: .source(bytes: 50_000_000))
        try await withTunnel(sshd, forwards: [echo.port, source.port]) { tunnel, ports in
            let good = 8, bad = 12
            let payloads = (0..<good).map { TestData.pseudoRandom(count: 3_000_000 + $0 * 1013, seed: UInt64(100 + $0)) }
            let results = runConcurrently(good + bad, timeout: 60) { index -> String? in
                if index < good {
                    let echoed = try TCPTestClient.connect(port: ports[0]).exchange(payloads[index], timeout: 50)
                    return echoed == payloads[index] ? nil : "good client \(index): got \(echoed.count) of \(payloads[index].count) bytes (or corrupted)"
                }
                // Bad clients: half on the download, half on the echo while uploading; read a little, then RST.
                let client = try RawClient(port: index % 2 == 0 ? ports[1] : ports[0])
                if index % 2 == 1 {
                    _ = client.sendAll(TestData.pseudoRandom(count: 400_000, seed: UInt64(index)), seconds: 10)
                }
                _ = try client.receive(upTo: 100_000, seconds: 10)
                client.resetClose()
                return nil
            }
            for result in results { if let problem = result { Issue.record("\(problem)") } }
            try waitUntil(timeout: 10, "every forwarded connection to end") { tunnel.counters.snapshot.connectionsActive == 0 }
            // The session survived all of it.
            let probe = Array("still alive".utf8)
            #expect(try TCPTestClient.connect(port: ports[0]).exchange(probe, timeout: 10) == probe)
            #expect(tunnel.counters.snapshot.sessionsEstablished == 1)
        }
    }

    @Test("600 short connections (open/close, send/close, full exchange): no leak, session still works")
    func churn() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [echo.port]) { tunnel, ports in
            let fdsBefore = openFileDescriptorCount()
            let total = 600
            let results = runConcurrently(8, timeout: 120) { worker -> String? in
                var index = worker
                while index < total {
                    defer { index += 8 }
                    switch index % 4 {
                    case 0:  // connect and close at once, probably while the channel is still opening
                        try RawClient(port: ports[0]).close()
                    case 1:  // send and close without reading (the echo comes back to a closed socket: RST)
                        let client = try RawClient(port: ports[0])
                        _ = client.sendAll(Array(repeating: UInt8(index & 0xff), count: 3000), seconds: 5)
                        client.close()
                    case 2:  // reset right after connecting
                        try RawClient(port: ports[0]).resetClose()
                    default:  // a full, checked exchange
                        let payload = TestData.pseudoRandom(count: 1000 + index, seed: UInt64(index))
                        let echoed = try TCPTestClient.connect(port: ports[0]).exchange(payload, timeout: 20)
                        if echoed != payload { return "connection \(index): echo mismatch (\(echoed.count) bytes)" }
                    }
                }
                return nil
            }
            for result in results { if let problem = result { Issue.record("\(problem)") } }
            try waitUntil(timeout: 15, "all \(total) forwarded connections to end") { tunnel.counters.snapshot.connectionsActive == 0 }
            // Clients that reset at once may be gone before NIO hands the socket over (no channelActive), so not
            // every one is counted; every full exchange (a quarter of them) must be.
            let accepted = tunnel.counters.snapshot.connectionsAccepted
            #expect(accepted >= total / 4 && accepted <= total, "accepted \(accepted) of \(total)")
            let payload = TestData.pseudoRandom(count: 2_000_000, seed: 7)
            #expect(try TCPTestClient.connect(port: ports[0]).exchange(payload, timeout: 20) == payload)
            // Local sockets (and whatever else) are released: allow a little slack for sockets still closing.
            try waitUntil(timeout: 10, "file descriptors to return near \(fdsBefore)") { openFileDescriptorCount() <= fdsBefore + 10 }
        }
    }

    @Test("100 refused channel opens interleaved with working connections leave the session up")
    func refusedOpensMixedWithGood() async throws {
        let sshd = try SSHDFixture()
        let closedPort = try freeTCPPort()
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [closedPort, echo.port]) { tunnel, ports in
            let results = runConcurrently(120, timeout: 60) { index -> String? in
                if index % 6 == 0 {
                    let payload = TestData.pseudoRandom(count: 200_000, seed: UInt64(index))
                    let echoed = try TCPTestClient.connect(port: ports[1]).exchange(payload, timeout: 40)
                    return echoed == payload ? nil : "echo \(index) mismatch"
                }
                let got = try TCPTestClient.connect(port: ports[0]).receiveAll(timeout: 30)
                return got.isEmpty ? nil : "refused client \(index) received \(got.count) bytes"
            }
            for result in results { if let problem = result { Issue.record("\(problem)") } }
            try waitUntil(timeout: 10, "every connection to end") { tunnel.counters.snapshot.connectionsActive == 0 }
            #expect(tunnel.counters.snapshot.channelOpenFailures == 100)
            #expect(try TCPTestClient.connect(port: ports[1]).exchange(Array("ok".utf8)) == Array("ok".utf8))
        }
    }

    // MARK: - Targets that misbehave

    @Test("a target that accepts and closes at once: the client sees EOF, the tunnel stays up")
    func targetClosesImmediately() async throws {
        let sshd = try SSHDFixture()
        let slam = try RawTarget(mode: .closeImmediately)
        let echo = try TCPTestServer(behavior: .echo)
        try await withTunnel(sshd, forwards: [slam.port, echo.port]) { tunnel, ports in
            for _ in 0..<20 {
                let got = try TCPTestClient.connect(port: ports[0]).receiveAll(timeout: 10)
                #expect(got.isEmpty)
            }
            try waitUntil(timeout: 10, "the slammed connections to end") { tunnel.counters.snapshot.connectionsActive == 0 }
            #expect(try TCPTestClient.connect(port: ports[1]).exchange(Array("ok".utf8)) == Array("ok".utf8))
        }
    }

    @Test("a target that closes while the client keeps uploading: the client's connection is closed, not stalled")
    func targetClosesDuringUpload() async throws {
        let sshd = try SSHDFixture()
        let slam = try RawTarget(mode: .closeImmediately)
        try await withTunnel(sshd, forwards: [slam.port]) { tunnel, ports in
            let client = try RawClient(port: ports[0])
            // The server side is gone: sshd sends EOF and then CLOSE for the channel. ssh -L closes the local socket
            // then, so a client that only writes sees an error. It must not block forever in send().
            let outcome = client.sendAll(TestData.pseudoRandom(count: 64_000_000, seed: 3), seconds: 10)
            #expect(outcome.isError, "upload to a closed target ended with \(outcome) (a stall means the remote CLOSE was ignored)")
            try waitUntil(timeout: 5, "the forwarded connection to end while the client still holds its socket") {
                tunnel.counters.snapshot.connectionsActive == 0
            }
            client.close()
        }
    }

    @Test("oracle: OpenSSH's ssh -L closes the client when the target closes during an upload")
    func openSSHClosesOnTargetClose() async throws {
        let sshd = try SSHDFixture()
        let slam = try RawTarget(mode: .closeImmediately)
        let local = try freeTCPPort()
        let ssh = try ProcessRunner("/usr/bin/ssh", sshd.sshOptions() + [
            "-N", "-o", "ExitOnForwardFailure=yes", "-L", "127.0.0.1:\(local):127.0.0.1:\(slam.port)", sshd.destination,
        ]).start()
        defer { _ = ssh.terminate(grace: 2) }
        try waitUntil(timeout: 10, "ssh -L to listen") { TCPTestClient.isAccepting(port: local) }
        let client = try RawClient(port: local)
        let outcome = client.sendAll(TestData.pseudoRandom(count: 64_000_000, seed: 3), seconds: 10)
        #expect(outcome.isError, "with ssh -L the upload ended with \(outcome)")
        client.close()
    }

    @Test("a target that never reads: the upload is held back (bounded bytesSent), then completes intact")
    func uploadBackpressure() async throws {
        let sshd = try SSHDFixture()
        let target = try RawTarget(mode: .holdThenCollect)
        try await withTunnel(sshd, forwards: [target.port]) { tunnel, ports in
            let payload = TestData.pseudoRandom(count: 48_000_000, seed: 11)
            let client = try RawClient(port: ports[0])
            let sender = Thread.detachedResult { () -> SendOutcome in
                let outcome = client.sendAll(payload, seconds: 60)
                client.shutdownWrite()
                return outcome
            }
            try target.waitForConnection(seconds: 10)
            // Let the pipeline fill up, then measure: it must stop growing far below the payload size.
            try waitUntilStable(timeout: 10, "bytesSent to stop growing while the target reads nothing") {
                tunnel.counters.snapshot.bytesSent
            }
            let held = tunnel.counters.snapshot.bytesSent
            #expect(held < 24_000_000, "the tunnel pushed \(held) bytes towards a target that reads nothing")
            #expect(held > 0)
            target.release()
            let outcome = try sender.wait(seconds: 60)
            #expect(outcome == .done)
            let received = try target.collected(seconds: 60)
            #expect(received.count == payload.count)
            #expect(TestData.sha256Hex(received) == TestData.sha256Hex(payload), "upload corrupted")
            client.close()
        }
    }

    @Test("the target shuts its write side first; the client's upload after that EOF still arrives whole")
    func reverseHalfClose() async throws {
        let sshd = try SSHDFixture()
        let target = try RawTarget(mode: .greetShutdownThenCollect)
        try await withTunnel(sshd, forwards: [target.port]) { _, ports in
            let client = try RawClient(port: ports[0])
            // Read the greeting until EOF: the tunnel must shut only our read side.
            var greeting: [UInt8] = []
            while true {
                let chunk = try client.receive(upTo: 4096, seconds: 10)
                if chunk.isEmpty { break }
                greeting += chunk
            }
            #expect(String(decoding: greeting, as: UTF8.self) == RawTarget.greeting)
            let payload = TestData.pseudoRandom(count: 6_000_000, seed: 5)
            #expect(client.sendAll(payload, seconds: 20) == .done)
            client.shutdownWrite()
            let received = try target.collected(seconds: 20)
            #expect(received.count == payload.count)
            #expect(TestData.sha256Hex(received) == TestData.sha256Hex(payload))
            client.close()
        }
    }

    // MARK: - The server dies or freezes

    @Test("sshd killed during 20 transfers: every client is closed within seconds, sessionEnded has a reason")
    func sshdKilledDuringTransfers() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let ended = FutureProbe(tunnel.sessionEnded!)
        let killedAt = LockedBox<Date?>(nil)

        let payload = TestData.pseudoRandom(count: 200_000_000, seed: 9)
        let finished = (0..<20).map { _ in Thread.detachedResult { () -> (Date, String) in
            do {
                let echoed = try TCPTestClient.connect(port: port).exchange(payload, timeout: 40)
                return (Date(), "EOF after \(echoed.count) bytes")
            } catch {
                return (Date(), "\(error)")
            }
        } }
        try waitUntil(timeout: 20, "traffic on all 20 connections") {
            tunnel.counters.snapshot.connectionsActive == 20 && tunnel.counters.snapshot.bytesReceived > 20_000_000
        }
        sshd.stop()
        killedAt.value = Date()

        for (index, thread) in finished.enumerated() {
            let (when, how) = try thread.wait(seconds: 45)
            let delay = when.timeIntervalSince(killedAt.value!)
            #expect(delay < 5, "client \(index) saw its connection end \(delay) s after sshd died (\(how))")
            #expect(!how.contains("not finished within"), "client \(index): \(how)")
        }
        let reason = try ended.wait(seconds: 5)
        #expect(reason != nil, "sessionEnded should report why the session ended")
        if let reason { #expect("\(reason)".contains("connection lost"), "reason: \(reason)") }
        try waitUntil(timeout: 5, "connectionsActive to drop to 0") { tunnel.counters.snapshot.connectionsActive == 0 }
        try await running.finish()
    }

    @Test("sshd killed while a client is blocked writing (and not reading): the client's socket is closed")
    func sshdKilledWhileClientBlocked() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let client = try RawClient(port: port)
        // A pipelining client: writes without reading. The echo fills its receive buffer, the tunnel's writes to it
        // stall, so the tunnel stops reading the SSH channel, sshd stops reading us, and finally our send blocks.
        let sender = Thread.detachedResult { () -> (SendOutcome, Date) in
            let outcome = client.sendAll(TestData.pseudoRandom(count: 200_000_000, seed: 4), seconds: 12)
            return (outcome, Date())
        }
        try waitUntilStable(timeout: 15, "the pipeline to fill up") { tunnel.counters.snapshot.bytesSent }
        sshd.stop()
        let killedAt = Date()
        let (outcome, when) = try sender.wait(seconds: 20)
        #expect(outcome.isError, "the blocked client ended with \(outcome) \(when.timeIntervalSince(killedAt)) s after sshd died")
        #expect(when.timeIntervalSince(killedAt) < 5, "the blocked client was released only \(when.timeIntervalSince(killedAt)) s after sshd died")
        client.close()
        try await running.finish()
    }

    @Test("stop() during 20 transfers with more opens queued returns within seconds and closes every client")
    func stopUnderLoad() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let payload = TestData.pseudoRandom(count: 200_000_000, seed: 12)
        let transfers = (0..<20).map { _ in Thread.detachedResult { () -> Date in
            _ = try? TCPTestClient.connect(port: port).exchange(payload, timeout: 40)
            return Date()
        } }
        try waitUntil(timeout: 20, "traffic on all 20 connections") {
            tunnel.counters.snapshot.connectionsActive == 20 && tunnel.counters.snapshot.bytesReceived > 20_000_000
        }
        // A burst of new clients so that channel opens are queued (libssh2 opens one at a time) when stop() comes.
        let late = try (0..<40).map { _ in try RawClient(port: port) }
        let start = Date()
        await tunnel.stop()
        let stopTook = Date().timeIntervalSince(start)
        #expect(stopTook < 4, "stop() took \(stopTook) s")
        for (index, thread) in transfers.enumerated() {
            let when = try thread.wait(seconds: 45)
            #expect(when.timeIntervalSince(start) < 5, "transfer \(index) ended \(when.timeIntervalSince(start)) s after stop()")
        }
        for (index, client) in late.enumerated() {
            let sawEnd = (try? client.receiveUntilEnd(seconds: 5)) != nil
            #expect(sawEnd, "queued client \(index) was not closed by stop()")
            client.close()
        }
        #expect(tunnel.counters.snapshot.connectionsActive == 0)
        try await running.group.shutdownGracefully()
    }

    @Test("stop() while the server is frozen and opens are queued returns within the close deadline")
    func stopWhileServerFrozen() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let busy = try RawClient(port: port)
        #expect(busy.sendAll(Array("x".utf8), seconds: 5) == .done)
        #expect(try busy.receive(upTo: 10, seconds: 10) == Array("x".utf8))
        sshd.suspend()
        defer { sshd.resume() }
        let queued = try (0..<10).map { _ in try RawClient(port: port) }
        try waitUntil(timeout: 5, "the queued clients to be accepted") { tunnel.counters.snapshot.connectionsAccepted == 11 }
        let start = Date()
        await tunnel.stop()
        let took = Date().timeIntervalSince(start)
        #expect(took < 4, "stop() against a frozen server took \(took) s")
        for (index, client) in ([busy] + queued).enumerated() {
            #expect((try? client.receiveUntilEnd(seconds: 5)) != nil, "client \(index) was not closed")
            client.close()
        }
        try await running.group.shutdownGracefully()
    }

    @Test("stop() while a client is blocked writing and not reading closes that client too")
    func stopWithBlockedClient() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let client = try RawClient(port: port)
        let sender = Thread.detachedResult { () -> (SendOutcome, Date) in
            (client.sendAll(TestData.pseudoRandom(count: 200_000_000, seed: 6), seconds: 12), Date())
        }
        try waitUntilStable(timeout: 15, "the pipeline to fill up") { tunnel.counters.snapshot.bytesSent }
        let start = Date()
        await tunnel.stop()
        #expect(Date().timeIntervalSince(start) < 4)
        let (outcome, when) = try sender.wait(seconds: 20)
        #expect(outcome.isError, "the blocked client ended with \(outcome) \(when.timeIntervalSince(start)) s after stop()")
        #expect(when.timeIntervalSince(start) < 5, "the blocked client was released \(when.timeIntervalSince(start)) s after stop()")
        client.close()
        try await running.group.shutdownGracefully()
    }

    @Test("sshd killed while channel opens are queued behind a frozen server: every waiting client is closed")
    func sshdKilledWithOpensQueued() async throws {
        let sshd = try SSHDFixture()
        let echo = try TCPTestServer(behavior: .echo)
        let running = try await RunningTunnel.start(sshd, targets: [echo.port])
        let (tunnel, port) = (running.tunnel, running.ports[0])
        let ended = FutureProbe(tunnel.sessionEnded!)
        sshd.suspend()
        let waiting = try (0..<15).map { _ in try RawClient(port: port) }
        try waitUntil(timeout: 5, "the waiting clients to be accepted") { tunnel.counters.snapshot.connectionsAccepted == 15 }
        sshd.stop()
        _ = try ended.wait(seconds: 5)
        for (index, client) in waiting.enumerated() {
            #expect((try? client.receiveUntilEnd(seconds: 5)) != nil, "waiting client \(index) was not closed")
            client.close()
        }
        #expect(tunnel.counters.snapshot.connectionsActive == 0)
        try await running.finish()
    }

    @Test("clients that send and half-close before their channel is even open still get a full reply")
    func halfCloseBeforeOpen() async throws {
        let sshd = try SSHDFixture()
        let sink = try TCPTestServer(behavior: .replyAfterEOF)
        try await withTunnel(sshd, forwards: [sink.port]) { tunnel, ports in
            let requests = (0..<60).map { TestData.pseudoRandom(count: 1 + $0 * 5003, seed: UInt64(300 + $0)) }
            // All connect, send and shut down at once: most wait in the open queue with EOF already seen.
            let clients = try requests.map { request -> RawClient in
                let client = try RawClient(port: ports[0])
                #expect(client.sendAll(request, seconds: 10) == .done)
                client.shutdownWrite()
                return client
            }
            for (index, client) in clients.enumerated() {
                var reply: [UInt8] = []
                while true {
                    let chunk = try client.receive(upTo: 4096, seconds: 20)
                    if chunk.isEmpty { break }
                    reply += chunk
                }
                let expected = "bytes=\(requests[index].count) sha256=\(TestData.sha256Hex(requests[index]))\n"
                #expect(String(decoding: reply, as: UTF8.self) == expected, "client \(index)")
                client.close()
            }
            try waitUntil(timeout: 10, "every connection to end") { tunnel.counters.snapshot.connectionsActive == 0 }
        }
    }

    // MARK: - Several tunnels in one process

    @Test("5 tunnels to 5 servers in one process; killing one server ends only its session")
    func manyTunnels() async throws {
        let servers = try (0..<5).map { _ in try SSHDFixture() }
        let echo = try TCPTestServer(behavior: .echo)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let tunnels = servers.map { makeTunnel($0, targets: [echo.port], group: group) }
        var ports: [Int] = []
        for tunnel in tunnels {
            _ = try await tunnel.start()
            ports.append(try boundPorts(tunnel)[0])
        }
        let payloads = (0..<20).map { TestData.pseudoRandom(count: 1_500_000 + $0, seed: UInt64(200 + $0)) }
        let localPorts = ports
        let results = runConcurrently(20, timeout: 60) { index -> String? in
            let echoed = try TCPTestClient.connect(port: localPorts[index % 5]).exchange(payloads[index], timeout: 50)
            return echoed == payloads[index] ? nil : "tunnel \(index % 5), client \(index): mismatch"
        }
        for result in results { if let problem = result { Issue.record("\(problem)") } }
        for tunnel in tunnels { #expect(tunnel.counters.snapshot.connectionsAccepted == 4) }

        let probes = tunnels.map { FutureProbe($0.sessionEnded!) }
        servers[2].stop()
        _ = try probes[2].wait(seconds: 5)
        for index in [0, 1, 3, 4] {
            #expect(!probes[index].isDone, "tunnel \(index)'s session ended when server 2 died")
            let payload = Array("tunnel \(index)".utf8)
            #expect(try TCPTestClient.connect(port: ports[index]).exchange(payload, timeout: 10) == payload)
        }
        for tunnel in tunnels { await tunnel.stop() }
        try await group.shutdownGracefully()
    }
}

// MARK: - Helpers for the stress tests

/// Runs `body(index)` on `count` threads at once; returns each result (an error becomes its description).
/// A thread still running after `timeout` is reported as such (the run does not hang).
private func runConcurrently(_ count: Int, timeout: Double, _ body: @escaping @Sendable (Int) throws -> String?) -> [String?] {
    let threads = (0..<count).map { index in Thread.detachedResult { () -> String? in
        do { return try body(index) } catch { return "thread \(index): \(error)" }
    } }
    let deadline = Date().addingTimeInterval(timeout)
    return threads.enumerated().map { index, thread in
        do { return try thread.wait(seconds: max(0, deadline.timeIntervalSinceNow)) } catch { return "thread \(index): \(error)" }
    }
}

final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSCondition()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.broadcast(); lock.unlock() }
    }
    func wait(until deadline: Date, _ predicate: (Value) -> Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while !predicate(stored) {
            if !lock.wait(until: deadline) { return predicate(stored) }
        }
        return true
    }
}

/// A thread whose result can be awaited with a timeout.
final class ResultThread<Value: Sendable>: @unchecked Sendable {
    private let box = LockedBox<Value?>(nil)
    init(_ body: @escaping @Sendable () -> Value) {
        let box = self.box
        let thread = Thread { box.value = body() }
        thread.stackSize = 1 << 20
        thread.start()
    }
    func wait(seconds: Double) throws -> Value {
        let deadline = Date().addingTimeInterval(seconds)
        guard box.wait(until: deadline, { $0 != nil }), let value = box.value else {
            throw TestSupportError("a test thread did not finish within \(seconds) s")
        }
        return value
    }
}

extension Thread {
    static func detachedResult<Value: Sendable>(_ body: @escaping @Sendable () -> Value) -> ResultThread<Value> {
        ResultThread(body)
    }
}

/// Watches an EventLoopFuture from a blocking test thread.
final class FutureProbe<Value: Sendable>: @unchecked Sendable {
    private let box = LockedBox<Result<Value, Error>?>(nil)
    init(_ future: EventLoopFuture<Value>) {
        let box = self.box
        future.whenComplete { box.value = $0 }
    }
    var isDone: Bool { box.value != nil }
    func wait(seconds: Double) throws -> Value {
        guard box.wait(until: Date().addingTimeInterval(seconds), { $0 != nil }), let result = box.value else {
            throw TestSupportError("the future did not complete within \(seconds) s")
        }
        return try result.get()
    }
}

private func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
}

enum SendOutcome: Equatable, Sendable, CustomStringConvertible {
    case done
    case failed(errno: Int32)
    case timedOut(sent: Int)
    var isError: Bool { if case .failed = self { return true } else { return false } }
    var description: String {
        switch self {
        case .done: return "all bytes sent"
        case .failed(let code): return "error \(String(cString: strerror(code)))"
        case .timedOut(let sent): return "a timeout (send blocked after \(sent) bytes)"
        }
    }
}

/// A plain POSIX client socket: what TCPTestConnection cannot do (SO_LINGER 0 resets, send outcomes as values).
final class RawClient: @unchecked Sendable {
    let fd: Int32
    private let closedLock = NSLock()
    private var closedFlag = false

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            Glibc.close(fd)
            throw TestSupportError("connect to 127.0.0.1:\(port): \(String(cString: strerror(code)))")
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit { close() }

    private func poll(_ events: Int32, until deadline: Date) -> Bool {
        while true {
            let ms = Int32(max(0, min(deadline.timeIntervalSinceNow * 1000, 60_000)).rounded(.up))
            var pfd = pollfd(fd: fd, events: Int16(events), revents: 0)
            let rc = Glibc.poll(&pfd, 1, ms)
            if rc > 0 { return true }
            if rc < 0 && errno == EINTR { continue }
            if Date() >= deadline { return false }
        }
    }

    func sendAll(_ bytes: [UInt8], seconds: Double) -> SendOutcome {
        let deadline = Date().addingTimeInterval(seconds)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, min($0.count - offset, 256 * 1024), Int32(MSG_NOSIGNAL)) }
            if n >= 0 { offset += n; continue }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { return .failed(errno: code) }
            if !poll(POLLOUT, until: deadline) { return .timedOut(sent: offset) }
        }
        return .done
    }

    /// Up to `upTo` bytes; empty at EOF; throws on timeout or error.
    func receive(upTo: Int, seconds: Double) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(seconds)
        var buffer = [UInt8](repeating: 0, count: upTo)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n >= 0 { return Array(buffer[0..<n]) }
            let code = errno
            if code == EINTR { continue }
            guard code == EAGAIN || code == EWOULDBLOCK else { throw TestSupportError("recv: \(String(cString: strerror(code)))") }
            if !poll(POLLIN, until: deadline) { throw TestSupportError("recv: nothing within \(seconds) s") }
        }
    }

    /// Reads and discards until EOF or a reset (both count as "the tunnel closed us"); throws on timeout.
    @discardableResult
    func receiveUntilEnd(seconds: Double) throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        var total = 0
        while true {
            let chunk: [UInt8]
            do {
                chunk = try receive(upTo: 256 * 1024, seconds: max(0, deadline.timeIntervalSinceNow))
            } catch let error as TestSupportError where error.description.hasPrefix("recv: nothing") {
                throw error
            } catch {
                return total  // ECONNRESET and friends: closed
            }
            if chunk.isEmpty { return total }
            total += chunk.count
        }
    }

    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Close with SO_LINGER 0: the kernel sends RST instead of FIN.
    func resetClose() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    func close() {
        closedLock.lock()
        let first = !closedFlag
        closedFlag = true
        closedLock.unlock()
        if first { Glibc.close(fd) }
    }
}

/// A target server with behaviours TCPTestServer lacks. One listening socket on 127.0.0.1, one thread per connection.
final class RawTarget: @unchecked Sendable {
    enum Mode: Sendable {
        /// accept(), close() at once.
        case closeImmediately
        /// accept(), read nothing until `release()`, then read everything until EOF and keep it.
        case holdThenCollect
        /// accept(), send `greeting`, shutdown(SHUT_WR), then read everything until EOF and keep it.
        case greetShutdownThenCollect
    }
    static let greeting = "hello, then EOF from the target\n"

    let port: Int
    private let listenFD: Int32
    private let mode: Mode
    private let released = LockedBox(false)
    private let connected = LockedBox(0)
    private let received = LockedBox<[UInt8]?>(nil)
    private let stopped = LockedBox(false)

    init(mode: Mode) throws {
        self.mode = mode
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 128) == 0 else {
            Glibc.close(fd)
            throw TestSupportError("RawTarget: cannot listen")
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    deinit {
        stopped.value = true
        released.value = true
        shutdown(listenFD, Int32(SHUT_RDWR))
        Glibc.close(listenFD)
    }

    private func acceptLoop() {
        while !stopped.value {
            let conn = accept(listenFD, nil, nil)
            if conn < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            connected.value += 1
            let thread = Thread { [self] in serve(conn) }
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { Glibc.close(fd) }
        switch mode {
        case .closeImmediately:
            return
        case .holdThenCollect:
            _ = released.wait(until: Date().addingTimeInterval(120)) { $0 }
        case .greetShutdownThenCollect:
            let bytes = Array(Self.greeting.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            shutdown(fd, Int32(SHUT_WR))
        }
        var all: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            all.append(contentsOf: buffer[0..<n])
        }
        received.value = all
    }

    func waitForConnection(seconds: Double) throws {
        guard connected.wait(until: Date().addingTimeInterval(seconds), { $0 > 0 }) else {
            throw TestSupportError("RawTarget: no connection within \(seconds) s")
        }
    }

    func release() { released.value = true }

    func collected(seconds: Double) throws -> [UInt8] {
        guard received.wait(until: Date().addingTimeInterval(seconds), { $0 != nil }), let bytes = received.value else {
            throw TestSupportError("RawTarget: the upload did not end (EOF) within \(seconds) s")
        }
        return bytes
    }
}
