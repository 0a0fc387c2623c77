// `tunnel-bench soak`: load and faults against the `tunnel up` binary, all on 127.0.0.1, each phase bounded in
// time, every payload checked byte for byte, the tunnel's memory and descriptors read from /proc. It is a
// subcommand of the benchmark because it needs what the benchmark already has (a throwaway sshd, C-speed echo
// and bulk targets, blocking clients, SOCKS5, the open-file limit), not because it measures speed: its result is
// pass or fail, with the figures that back it.
//
//   swift build -c release && .build/release/tunnel-bench soak        # every phase, full size (about 8 minutes)
//   .build/release/tunnel-bench soak --phases restart                  # one phase
//   .build/debug/tunnel-bench soak --small                             # every phase, small (Tests/run, about 1 min)
import ArgumentParser
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

extension TunnelBench {
    struct Soak: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load and faults against tunnel up: soak, slow peers, abrupt closes, sshd restarts, descriptor exhaustion.",
            discussion: "Pass or fail: exits non-zero if any byte is corrupt or lost, a connection hangs, the process dies, or memory/descriptors do not come back.")

        @Option(help: "The tunnel binary (default: `tunnel` next to this program).")
        var tunnel: String = CommonOptions.builtTunnel
        @Option(help: "Phases to run, comma-separated: soak, slow, abrupt, restart, fds (the default), and blackhole (a known limitation).")
        var phases = SoakPhase.defaults.map(\.rawValue).joined(separator: ",")
        @Option(help: "Concurrent connections in the soak phase.")
        var connections = 1000
        @Option(help: "Seconds of soak.")
        var seconds: Double = 180
        @Option(help: "Largest payload of one exchange, in bytes (sizes are log-uniform from 1 byte).")
        var maxBytes = 256 * 1024
        @Option(help: "Connect-and-drop clients on the proxy port in the abrupt phase.")
        var drops = 10_000
        @Option(help: "Garbage or truncated proxy handshakes in the abrupt phase.")
        var garbage = 3000
        @Option(help: "Concurrent connections while sshd is killed and restarted.")
        var restartConnections = 500
        @Option(help: "Seconds of the restart phase (sshd is killed every 10 s of it).")
        var restartSeconds: Double = 45
        @Option(help: "Seconds the slow readers and writers run.")
        var slowSeconds: Double = 20
        @Option(help: "Open-file limit of the tunnel process in the fds phase.")
        var fileLimit = 64
        @Option(help: "Seed for sizes and payloads (printed; the same seed repeats a run's sizes).")
        var seed = UInt64(monotonicNanoseconds() % 1_000_000)
        @Flag(help: "Small sizes for CI: 50 connections for 10 s, 500 drops, 200 garbage handshakes, a 12 s restart phase.")
        var small = false

        func validate() throws {
            for name in phases.split(separator: ",") where SoakPhase(rawValue: String(name)) == nil {
                throw ValidationError("unknown phase \(name); phases are \(SoakPhase.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard (1...5000).contains(connections), (1...5000).contains(restartConnections) else {
                throw ValidationError("--connections and --restart-connections must be between 1 and 5000")
            }
            guard maxBytes >= 1 && maxBytes <= 64 << 20 else { throw ValidationError("--max-bytes must be between 1 and 64 MiB") }
            guard fileLimit >= 24 && fileLimit <= 4096 else { throw ValidationError("--file-limit must be between 24 and 4096") }
        }

        func run() throws {
            var settings = SoakSettings(tunnel: tunnel, connections: connections, seconds: seconds, maxBytes: maxBytes,
                                        drops: drops, garbage: garbage, restartConnections: restartConnections,
                                        restartSeconds: restartSeconds, slowSeconds: slowSeconds, fileLimit: fileLimit,
                                        seed: seed)
            if small { settings.shrink() }
            let selected = phases.split(separator: ",").compactMap { SoakPhase(rawValue: String($0)) }
            try SoakRun(settings: settings).execute(selected)
        }
    }
}

enum SoakPhase: String, CaseIterable {
    case soak, slow, abrupt, restart, fds
    /// Not in the default set: shows a known limitation (see `blackhole(sshd:echo:)`).
    case blackhole

    static let defaults: [SoakPhase] = [.soak, .slow, .abrupt, .restart, .fds]
}

struct SoakSettings {
    var tunnel: String
    var connections: Int
    var seconds: Double
    var maxBytes: Int
    var drops: Int
    var garbage: Int
    var restartConnections: Int
    var restartSeconds: Double
    var slowSeconds: Double
    var fileLimit: Int
    var seed: UInt64
    var stallLimit: Double = 60

    mutating func shrink() {
        connections = min(connections, 50)
        seconds = min(seconds, 10)
        maxBytes = min(maxBytes, 64 * 1024)
        drops = min(drops, 500)
        garbage = min(garbage, 200)
        restartConnections = min(restartConnections, 40)
        restartSeconds = min(restartSeconds, 12)
        slowSeconds = min(slowSeconds, 4)
    }
}

/// What one phase found: figures to print, and failures (none means it passed).
struct PhaseResult {
    var name: String
    var command: String
    var lines: [String] = []
    var failures: [String] = []

    mutating func say(_ line: String) {
        lines.append(line)
        printNow("  " + line)
    }

    mutating func check(_ condition: Bool, _ failure: @autoclosure () -> String) {
        if !condition {
            failures.append(failure())
            printNow("  FAILED: " + failures.last!)
        }
    }
}

struct SoakRun {
    let settings: SoakSettings

    func execute(_ phases: [SoakPhase]) throws {
        let started = monotonicNanoseconds()
        let files = try FileLimit.raise(toAtLeast: 4 * max(settings.connections, settings.restartConnections) + 1024)
        printNow("tunnel-bench soak at \(MachineLoad.utcNow()); load before: \(MachineLoad.loadAverage()); seed \(settings.seed)")
        printNow("open-file limit \(files); tunnel binary \(settings.tunnel)")
        guard access(settings.tunnel, X_OK) == 0 else {
            throw BenchError("\(settings.tunnel) is not an executable: build it first (swift build -c release) or pass --tunnel PATH")
        }
        var options = SSHDFixture.Options()
        options.logLevel = "ERROR"
        // Every soak connection is a channel on one session; OpenSSH's own limits must not be what is measured.
        options.extraConfig = ["MaxStartups 100:30:200"]
        let sshd = try SSHDFixture(options: options)
        defer { sshd.stop() }
        let echo = try EchoServer()
        defer { echo.stop() }
        var results: [PhaseResult] = []
        for phase in phases {
            printNow("\n== \(phase.rawValue)")
            var result: PhaseResult
            do {
                switch phase {
                case .soak: result = try soak(sshd: sshd, echo: echo)
                case .slow: result = try slow(sshd: sshd, echo: echo)
                case .abrupt: result = try abrupt(sshd: sshd, echo: echo)
                case .restart: result = try restart(echo: echo, sshdOptions: options)
                case .fds: result = try descriptors(sshd: sshd, echo: echo)
                case .blackhole: result = try blackhole(sshd: sshd, echo: echo)
                }
            } catch {
                result = PhaseResult(name: phase.rawValue, command: "")
                result.check(false, "\(error)")
            }
            results.append(result)
        }
        printNow("\n== soak summary (\(String(format: "%.0f", Double(monotonicNanoseconds() - started) / 1e9)) s; load after: \(MachineLoad.loadAverage()))\n")
        printNow("| phase | result | figures |")
        printNow("|---|---|---|")
        for result in results {
            let verdict = result.failures.isEmpty ? "passed" : "FAILED (\(result.failures.count))"
            printNow("| \(result.name) | \(verdict) | \(result.lines.first ?? "") |")
        }
        let failed = results.filter { !$0.failures.isEmpty }
        guard failed.isEmpty else {
            printNow("\n" + failed.flatMap { r in r.failures.map { "\(r.name): \($0)" } }.joined(separator: "\n"))
            throw ExitCode.failure
        }
        printNow("\nfailures: 0")
    }

    /// Waits (bounded) until the tunnel holds no more descriptors than `baseline` plus `slack`; returns the count.
    private func descriptorsSettle(_ tunnel: SoakTunnel, to baseline: Int, slack: Int = 2, within seconds: Double = 30) -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let now = tunnel.openDescriptors, now <= baseline + slack { return now }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return tunnel.openDescriptors ?? -1
    }

    private func load(workers: Int, routes: [ExchangeRoute]) -> SoakLoad {
        SoakLoad(workers: workers, routes: routes, maxBytes: settings.maxBytes, maxExchangesPerConnection: 8,
                 stallLimit: settings.stallLimit, seed: settings.seed)
    }

    // MARK: soak

    /// N concurrent connections, half through the LocalForward and half through the proxy, random sizes, for a
    /// few minutes: nothing may be corrupt, closed early, stuck or refused, and memory and descriptors come back.
    private func soak(sshd: SSHDFixture, echo: EchoServer) throws -> PhaseResult {
        var result = PhaseResult(name: "soak", command: "tunnel-bench soak --phases soak")
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port)
        defer { try? tunnel.stop() }
        let idle = (fds: tunnel.openDescriptors ?? -1, rss: tunnel.rssKiB ?? -1)
        let tally = SoakTally()
        var quarter: Int?
        var lastUnderLoad: Int?
        var peakFDs = 0
        var nextReport = 10.0
        printNow("  \(settings.connections) connections for \(Int(settings.seconds)) s, payloads 1 B to \(SoakFormat.bytes(settings.maxBytes)); idle: \(idle.fds) fds, \(SoakFormat.kib(idle.rss)) RSS")
        load(workers: settings.connections, routes: tunnel.routes).run(seconds: settings.seconds, tally: tally) { elapsed in
            if elapsed <= settings.seconds {
                let rss = tunnel.rssKiB
                if quarter == nil && elapsed >= settings.seconds / 4 { quarter = rss }
                lastUnderLoad = rss
                peakFDs = max(peakFDs, tunnel.openDescriptors ?? 0)
            }
            if elapsed >= nextReport {
                nextReport += 30
                printNow("  \(Int(elapsed)) s: \(tally.summary); \(tunnel.openDescriptors ?? -1) fds, \(SoakFormat.kib(tunnel.rssKiB)) RSS")
            }
        }
        let fdsAfter = descriptorsSettle(tunnel, to: idle.fds)
        let rssAfter = tunnel.rssKiB ?? -1
        result.say("\(tally.summary)")
        result.say("fds: \(idle.fds) idle before, peak \(peakFDs), \(fdsAfter) idle after; RSS: \(SoakFormat.kib(idle.rss)) before, "
            + "\(SoakFormat.kib(quarter)) at 1/4, \(SoakFormat.kib(lastUnderLoad)) at the end of the load, \(SoakFormat.kib(rssAfter)) idle after")
        result.check(tunnel.process.isRunning, "tunnel up exited")
        tally.read { t in
            result.check(t.verified > 0, "no exchange verified")
            result.check(t.corrupt == 0 && t.closed == 0 && t.stuck == 0 && t.connectFailed == 0,
                         "failed exchanges: \(t.examples.joined(separator: "; "))")
        }
        result.check(fdsAfter >= 0 && fdsAfter <= idle.fds + 2, "descriptors did not come back: \(idle.fds) before, \(fdsAfter) after")
        if let quarter, let lastUnderLoad {
            // Flat: under the same load, memory at the end is not above what it was a quarter in (10 % + 4 MiB for
            // allocator noise), and idle afterwards it is not above that either.
            let bound = quarter + quarter / 10 + 4096
            result.check(lastUnderLoad <= bound && rssAfter <= bound,
                         "memory grew: \(SoakFormat.kib(quarter)) at 1/4, \(SoakFormat.kib(lastUnderLoad)) at the end, \(SoakFormat.kib(rssAfter)) after")
        }
        return result
    }

    // MARK: slow peers

    /// Slow readers (1 byte per 100 ms from a target that would send 1 GiB) and a slow writer (1 byte per 100 ms,
    /// each echoed): the tunnel's memory does not grow with what the target offers, and other connections keep
    /// their speed.
    private func slow(sshd: SSHDFixture, echo: EchoServer) throws -> PhaseResult {
        var result = PhaseResult(name: "slow", command: "tunnel-bench soak --phases slow")
        let source = try BulkServer(bytes: 1 << 30)
        defer { source.stop() }
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port)
        defer { try? tunnel.stop() }

        // The usual load, smaller, runs throughout; a lone client's latency is measured beside it before the slow
        // peers come and while they are there, so the difference is theirs.
        let tally = SoakTally()
        var during: (p50: Double, p99: Double) = (0, 0)
        let loadThread = DispatchGroup()
        loadThread.enter()
        let smallLoad = load(workers: 20, routes: tunnel.routes)
        let loadSeconds = settings.slowSeconds + 3
        startThread("slow-phase load") {
            defer { loadThread.leave() }
            smallLoad.run(seconds: loadSeconds, tally: tally)
        }
        Thread.sleep(forTimeInterval: 0.5)
        let before = try latency(tunnel, samples: 200)
        let rssBefore = tunnel.rssKiB ?? -1

        let stop = StopSignal()
        let slowOK = Counter()
        let slowBytes = Counter()
        let slowProblems = Problems()
        let slowDone = DispatchGroup()
        // Two slow readers through the proxy from the 1 GiB source, one slow reader on the echo forward with 4 MiB
        // pushed at it, one slow writer on the echo forward.
        for kind in 0..<4 {
            slowDone.enter()
            startThread("slow \(kind)") {
                defer { slowDone.leave() }
                do {
                    let socket: BlockingSocket
                    if kind < 2 {
                        socket = try ExchangeRoute.socks5(proxyPort: tunnel.proxyPort, targetPort: source.port).connect(timeout: 10)
                        try [UInt8(ascii: "D")].withUnsafeBytes { try socket.sendAll($0) }
                    } else {
                        socket = try ExchangeRoute.forward(port: tunnel.forwardPort).connect(timeout: 10)
                    }
                    defer { socket.close() }
                    if kind == 2 {
                        // Push 4 MiB without reading: the send stops when the path is full (non-blocking).
                        let flags = fcntl(socket.fd, F_GETFL)
                        _ = fcntl(socket.fd, F_SETFL, flags | O_NONBLOCK)
                        let chunk = [UInt8](repeating: 0x33, count: 4 << 20)
                        _ = chunk.withUnsafeBytes { send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                        _ = fcntl(socket.fd, F_SETFL, flags)
                    }
                    var byte: [UInt8] = [0]
                    var counter: UInt8 = 0
                    while !stop.isSet {
                        if kind == 3 {
                            counter &+= 1
                            byte[0] = counter
                            try byte.withUnsafeBytes { try socket.sendAll($0) }
                        }
                        try byte.withUnsafeMutableBytes { try socket.receiveExactly($0) }
                        let expected: UInt8 = kind < 2 ? 0x5A : kind == 2 ? 0x33 : counter
                        guard byte[0] == expected else { throw BenchError("slow client \(kind): got \(byte[0]), expected \(expected)") }
                        slowBytes.add(1)
                        Thread.sleep(forTimeInterval: 0.1)
                    }
                    slowOK.add(1)
                } catch {
                    slowProblems.add("slow client \(kind): \(error)")
                }
            }
        }
        Thread.sleep(forTimeInterval: min(2, settings.slowSeconds / 2))   // the slow clients' windows fill first
        during = try latency(tunnel, samples: 200)
        loadThread.wait()
        let rssDuring = tunnel.rssKiB ?? -1
        stop.set()
        slowDone.wait()
        result.say("4 slow peers (3 readers at 1 B/100 ms offered 1 GiB, 4 MiB and 4 MiB; 1 writer at 1 B/100 ms) for \(Int(settings.slowSeconds)) s: "
            + "\(slowBytes.value) bytes moved slowly; RSS \(SoakFormat.kib(rssBefore)) before, \(SoakFormat.kib(rssDuring)) with them; "
            + "lone client 64 B round trip p50 \(ms(before.p50)) -> \(ms(during.p50)), p99 \(ms(before.p99)) -> \(ms(during.p99)); beside them \(tally.summary)")
        result.check(slowProblems.all.isEmpty, slowProblems.all.joined(separator: "; "))
        result.check(slowOK.value == 4, "\(4 - slowOK.value) slow clients failed")
        result.check(rssDuring - rssBefore < 48 * 1024, "memory grew by \(SoakFormat.kib(rssDuring - rssBefore)) with slow readers")
        result.check(during.p50 <= max(5 * before.p50, before.p50 + 20_000), "a lone client slowed from \(ms(before.p50)) to \(ms(during.p50)) (median)")
        tally.read { t in
            result.check(t.verified > 0 && t.corrupt == 0 && t.closed == 0 && t.stuck == 0 && t.connectFailed == 0,
                         "load beside the slow peers: \(t.examples.joined(separator: "; "))")
        }
        result.check(tunnel.process.isRunning, "tunnel up exited")
        return result
    }

    /// Median and p99 (µs) of sequential 64-byte round trips on one connection through the forward.
    private func latency(_ tunnel: SoakTunnel, samples: Int) throws -> (p50: Double, p99: Double) {
        let socket = try BlockingSocket.connect(port: tunnel.forwardPort, timeout: 10)
        defer { socket.close() }
        var trip = RoundTrip()
        try trip.run(on: socket)
        var times: [UInt64] = []
        for _ in 0..<samples {
            let start = monotonicNanoseconds()
            try trip.run(on: socket)
            times.append(monotonicNanoseconds() - start)
        }
        let p = Stats.percentiles(ofNanoseconds: &times, [50, 99])
        return (p[0] / 1000, p[1] / 1000)
    }

    private func ms(_ microseconds: Double) -> String { String(format: "%.2f ms", microseconds / 1000) }

    // MARK: abrupt closes

    /// Clients and targets resetting mid-transfer, targets that never accept, connect-and-drop clients and
    /// garbage handshakes on the proxy: the process stays up, serves, and gives its descriptors back.
    private func abrupt(sshd: SSHDFixture, echo: EchoServer) throws -> PhaseResult {
        var result = PhaseResult(name: "abrupt", command: "tunnel-bench soak --phases abrupt")
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port)
        defer { try? tunnel.stop() }
        let baseline = tunnel.openDescriptors ?? -1
        let routes = tunnel.routes
        let problems = Problems()

        // Clients that reset mid-transfer: half a payload sent, some of the echo read, then RST.
        let clientResets = max(100, settings.garbage / 6)
        runParallel(count: clientResets, threads: 16) { index in
            let route = routes[index % 2]
            guard let socket = try? route.connect(timeout: 10) else { return problems.add("connect \(route) failed") }
            var random = SplitMix64(seed: UInt64(index))
            let payload = Payload(size: 64 * 1024, seed: random.next())
            _ = payload.bytes.withUnsafeBytes { send(socket.fd, $0.baseAddress, Int.random(in: 1...$0.count, using: &random), Int32(MSG_NOSIGNAL)) }
            var one: [UInt8] = [0]
            _ = try? one.withUnsafeMutableBytes { try socket.receiveExactly($0) }
            resetAndClose(socket.fd)
        }
        // Targets that reset mid-transfer: 256 KiB sent at a target that resets after 1000 bytes; the client
        // must see the connection end, not hang.
        let resetter = try ResettingServer(readBeforeReset: 1000)
        defer { resetter.stop() }
        let targetResets = max(50, settings.garbage / 15)
        let resetOutcomes = SoakTally()
        runParallel(count: targetResets, threads: 16) { index in
            let route = ExchangeRoute.socks5(proxyPort: tunnel.proxyPort, targetPort: resetter.port)
            guard let socket = try? route.connect(timeout: 10) else { return resetOutcomes.record(.connectFailed("connect"), route: route) }
            defer { socket.close() }
            let payload = Payload(size: 256 * 1024, seed: UInt64(index))
            resetOutcomes.record(Exchange.run(on: socket, payload: payload, offset: 0, count: payload.bytes.count, stallLimit: 30), route: route)
        }
        // Targets that never accept (the kernel completes the connection, nobody reads): the clients send, wait
        // 3 s for an answer that never comes and give up; meanwhile the tunnel serves others.
        let neverAccepting = try NeverAcceptingServer(backlog: 4096)
        defer { neverAccepting.stop() }
        let pendingDone = DispatchGroup()
        for index in 0..<20 {
            pendingDone.enter()
            startThread("never \(index)") {
                defer { pendingDone.leave() }
                if let socket = try? ExchangeRoute.socks5(proxyPort: tunnel.proxyPort, targetPort: neverAccepting.port).connect(timeout: 3) {
                    try? Array("anyone there?".utf8).withUnsafeBytes { try socket.sendAll($0) }
                    var byte: [UInt8] = [0]
                    _ = try? byte.withUnsafeMutableBytes { try socket.receiveExactly($0) }
                    socket.close()
                } else {
                    problems.add("SOCKS5 connect to a target that never accepts failed")
                }
            }
        }
        var servedMeanwhile = true
        do { try tunnel.verifyServing(within: 10) } catch { servedMeanwhile = false; problems.add("while targets never accepted: \(error)") }
        pendingDone.wait()
        // A client that closed is, to the tunnel, one that may have only half-closed: like ssh -L it keeps the
        // connection until the target side ends too. The target going away ends them (counted below).
        neverAccepting.stop()
        // Connect-and-drop on the proxy port: half close politely, half reset.
        let dropFailures = Counter()
        runParallel(count: settings.drops, threads: 8) { index in
            guard let socket = try? BlockingSocket.connect(port: tunnel.proxyPort, timeout: 10) else { return dropFailures.add(1) }
            if index % 2 == 0 { socket.close() } else { resetAndClose(socket.fd) }
        }
        // Garbage and truncated handshakes: sent, then closed at once or after reading what the proxy answers.
        let garbageFailures = Counter()
        runParallel(count: settings.garbage, threads: 8) { index in
            guard let socket = try? BlockingSocket.connect(port: tunnel.proxyPort, timeout: 2) else { return garbageFailures.add(1) }
            var random = SplitMix64(seed: settings.seed &+ UInt64(index))
            let bytes = GarbageHandshake.bytes(kind: index, random: &random)
            try? bytes.withUnsafeBytes { try socket.sendAll($0) }
            if index % 3 == 0 {
                var answer = [UInt8](repeating: 0, count: 512)
                _ = try? answer.withUnsafeMutableBytes { try socket.receiveSome($0) }   // bounded by the 2 s timeout
            }
            if index % 2 == 0 { socket.close() } else { resetAndClose(socket.fd) }
        }
        var servedAfter = true
        do { try tunnel.verifyServing(within: 10) } catch { servedAfter = false; problems.add("after the faults: \(error)") }
        let fdsAfter = descriptorsSettle(tunnel, to: baseline)
        let ended = resetOutcomes.read { t in t.closed + t.verified }
        result.say("\(clientResets) client resets mid-transfer, \(targetResets) target resets mid-transfer (\(ended) ended, "
            + "\(resetOutcomes.read { $0.stuck }) hung), 20 clients to a target that never accepts, \(settings.drops) connect-and-drop, "
            + "\(settings.garbage) garbage/truncated handshakes; process up and serving: \(tunnel.process.isRunning && servedAfter); fds \(baseline) before, \(fdsAfter) after")
        result.check(tunnel.process.isRunning, "tunnel up exited:\n" + tunnel.process.outputSummary())
        result.check(servedMeanwhile && servedAfter, problems.all.joined(separator: "; "))
        result.check(resetOutcomes.read { $0.stuck == 0 && $0.corrupt == 0 }, "target resets: \(resetOutcomes.read { $0.examples })")
        result.check(dropFailures.value == 0, "\(dropFailures.value) connect-and-drop clients could not connect")
        result.check(garbageFailures.value == 0, "\(garbageFailures.value) garbage clients could not connect")
        result.check(fdsAfter >= 0 && fdsAfter <= baseline + 2, "descriptors did not come back: \(baseline) before, \(fdsAfter) after")
        return result
    }

    // MARK: blackholed target (a known limitation)

    /// A proxy client asks for a target whose connect hangs (SYNs dropped): sshd answers the channel open only when
    /// its connect ends (about two minutes later). libssh2 opens one channel at a time per session, so every new
    /// connection of the tunnel waits behind that open. This phase measures how long a new client through the
    /// LocalForward then waits; it fails while the limitation stands.
    private func blackhole(sshd: SSHDFixture, echo: EchoServer) throws -> PhaseResult {
        var result = PhaseResult(name: "blackhole", command: "tunnel-bench soak --phases blackhole")
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port)
        defer { try? tunnel.stop() }
        let blackholed = try NeverAcceptingServer(backlog: 1)
        defer { blackholed.stop() }
        // Fill its accept queue (two connections), so the next SYN is dropped.
        let fillers = try (0..<2).map { _ in try BlockingSocket.connect(port: blackholed.port, timeout: 3) }
        defer { fillers.forEach { $0.close() } }
        let stuckClient = try BlockingSocket.connect(port: tunnel.proxyPort, timeout: 10)
        defer { stuckClient.close() }
        let greeting: [UInt8] = [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, UInt8(blackholed.port >> 8), UInt8(blackholed.port & 0xFF)]
        try greeting.withUnsafeBytes { try stuckClient.sendAll($0) }
        Thread.sleep(forTimeInterval: 0.5)   // the open is on its way to sshd
        let started = monotonicNanoseconds()
        var served = true
        do { try tunnel.verifyServing(within: 15) } catch { served = false }
        let waited = Double(monotonicNanoseconds() - started) / 1e9
        result.say("one SOCKS5 client to a blackholed target; a new client through the LocalForward then "
            + (served ? "was served after \(String(format: "%.1f", waited)) s" : "was not served within 15 s"))
        result.check(served && waited < 5, "new connections wait behind a channel open the server has not answered (libssh2 opens one channel at a time)")
        return result
    }

    // MARK: sshd killed and restarted

    /// The soak's load while sshd is killed (SIGKILL, the whole process tree) every 10 s and started again 2 s
    /// later: every exchange is verified, or its connection closed; none hangs, none is corrupt.
    private func restart(echo: EchoServer, sshdOptions: SSHDFixture.Options) throws -> PhaseResult {
        var result = PhaseResult(name: "restart", command: "tunnel-bench soak --phases restart")
        let sshd = try SSHDFixture(options: sshdOptions)
        defer { sshd.stop() }
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port)
        defer { try? tunnel.stop() }
        let baseline = tunnel.openDescriptors ?? -1
        let tally = SoakTally()
        var kills = 0
        var nextKill = 4.0
        var restartAt: Double?
        load(workers: settings.restartConnections, routes: tunnel.routes).run(seconds: settings.restartSeconds, tally: tally) { elapsed in
            if let at = restartAt, elapsed >= at {
                try? sshd.start()
                restartAt = nil
            } else if restartAt == nil, elapsed >= nextKill, elapsed < settings.restartSeconds - 4 {
                sshd.crash()
                kills += 1
                restartAt = elapsed + 2
                nextKill += 10
            }
        }
        if restartAt != nil { try? sshd.start() }
        var served = true
        do { try tunnel.verifyServing(within: 30) } catch { served = false; result.check(false, "after the restarts: \(error)") }
        let fdsAfter = descriptorsSettle(tunnel, to: baseline)
        result.say("\(settings.restartConnections) connections for \(Int(settings.restartSeconds)) s, sshd killed \(kills) times: \(tally.summary); "
            + "serving after: \(served); fds \(baseline) before, \(fdsAfter) after")
        result.check(kills >= 1, "sshd was never killed (phase too short)")
        result.check(tunnel.process.isRunning, "tunnel up exited")
        tally.read { t in
            result.check(t.verified > 0, "no exchange verified")
            result.check(t.corrupt == 0 && t.stuck == 0, "corrupt or hung exchanges: \(t.examples.joined(separator: "; "))")
            // A connection cut short must be reset: a plain EOF would look like a complete reply to a client that
            // reads until the end.
            result.check(t.closedByEOF == 0, "\(t.closedByEOF) connections cut short ended with a plain EOF, not a reset")
        }
        result.check(fdsAfter >= 0 && fdsAfter <= baseline + 2, "descriptors did not come back: \(baseline) before, \(fdsAfter) after")
        return result
    }

    // MARK: descriptor exhaustion

    /// A tunnel process with a low open-file limit: connections are held open until one is no longer accepted;
    /// a log line says so, the process does not spin, the held connections still work, and once some close the
    /// waiting client is served.
    private func descriptors(sshd: SSHDFixture, echo: EchoServer) throws -> PhaseResult {
        var result = PhaseResult(name: "fds", command: "tunnel-bench soak --phases fds")
        let tunnel = try SoakTunnel(binary: settings.tunnel, sshd: sshd, echoPort: echo.port, fileLimit: settings.fileLimit)
        defer { try? tunnel.stop() }
        let baseline = tunnel.openDescriptors ?? -1
        var held: [BlockingSocket] = []
        defer { held.forEach { $0.close() } }
        var waiting: BlockingSocket?
        var trip = RoundTrip()
        while held.count <= settings.fileLimit {
            let socket = try BlockingSocket.connect(port: tunnel.forwardPort, timeout: 3)
            do {
                try trip.run(on: socket)
                held.append(socket)
            } catch {
                waiting = socket   // connected in the kernel's backlog, not accepted
                break
            }
        }
        guard let waiting else {
            result.check(false, "all \(held.count) connections were accepted with a limit of \(settings.fileLimit) descriptors")
            return result
        }
        defer { waiting.close() }
        let logged = (try? tunnel.process.waitForLine(containing: "cannot accept a client", timeout: 5)) != nil
        let cpuBefore = try ProcessStats.cpuMilliseconds(tunnel.pid)
        Thread.sleep(forTimeInterval: 2)   // what is measured: CPU while out of descriptors
        let cpu = try ProcessStats.cpuMilliseconds(tunnel.pid) - cpuBefore
        var heldWork = 0
        for socket in held where (try? trip.run(on: socket)) != nil { heldWork += 1 }
        let heldCount = held.count
        // Free ten descriptors: the waiting client is accepted and its round trip (sent long ago) comes back.
        for socket in held.suffix(10) { socket.close() }
        held.removeLast(min(10, held.count))
        var reply = [UInt8](repeating: 0, count: RoundTrip.size)
        let recovered = (try? reply.withUnsafeMutableBytes { try BlockingSocket(fd: waiting.fd, port: waiting.port).receiveExactly($0) }) != nil
        let resumedLogged = (try? tunnel.process.waitForLine(containing: "accepting clients again", timeout: 5)) != nil
        result.say("limit \(settings.fileLimit) fds (\(baseline) in use idle): \(heldCount) clients held, the next one waited; "
            + "logged: \(logged); CPU while out of fds: \(Int(cpu)) ms in 2 s; held clients still served: \(heldWork)/\(heldCount); "
            + "waiting client served after 10 closed: \(recovered); recovery logged: \(resumedLogged)")
        result.check(logged, "no log line about the refused accept:\n" + tunnel.process.outputSummary())
        result.check(cpu < 500, "the tunnel used \(Int(cpu)) ms of CPU in 2 s while out of descriptors (busy accept loop?)")
        result.check(heldWork == heldCount, "\(heldCount - heldWork) held clients stopped working")
        result.check(recovered, "the waiting client was not served after descriptors were freed")
        result.check(resumedLogged, "no log line about accepting again")
        result.check(tunnel.process.isRunning, "tunnel up exited")
        return result
    }
}

/// A flag threads can read while one sets it.
final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// Problems reported from many threads.
final class Problems: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    var all: [String] { lock.withLock { list } }
    func add(_ problem: String) { lock.withLock { if list.count < 10 { list.append(problem) } } }
}
