// tunnel-bench: `tunnel up` against OpenSSH's `ssh -N -L` on the same throwaway sshd, in the same run, plus the
// config parser's speed. Every case starts its forwarders fresh and prints a table with the ratio tunnel/OpenSSH.
//
//   swift build -c release && .build/release/tunnel-bench             # every case, full size (5 to 7 minutes)
//   .build/release/tunnel-bench many-clients --clients 100             # one case
//   .build/release/tunnel-bench long-link --round-trip 100             # over a relay adding 100 ms round trip
//   .build/release/tunnel-bench proxy                                  # DynamicForward vs ssh -D and vs LocalForward
//   .build/release/tunnel-bench parallel                               # 8 and 64 downloads at once, TunnelSessions
//   .build/debug/tunnel-bench --smoke                                  # every case, tiny sizes (Tests/run)
//
// Everything stays on 127.0.0.1. Needs root (sshd) and the OpenSSH client and server.
import ArgumentParser
import CLibSSH2
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

@main
struct TunnelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel-bench",
        abstract: "Compare `tunnel up` with `ssh -N -L` against the same sshd, in the same run.",
        discussion: """
            Without a subcommand every case runs (`all`); `tunnel-bench --smoke` runs each with tiny sizes and \
            fails if one does not move its bytes. Only ratios from the same run mean anything: the figures move \
            with the machine's load, which is printed before and after.
            """,
        subcommands: [All.self, Parse.self, Throughput.self, LongLink.self, RemoteThroughput.self, Parallel.self, ManyClients.self, Latency.self, Idle.self, Startup.self, ConnectRate.self, Reconnect.self, Proxy.self, Soak.self],
        defaultSubcommand: All.self
    )
}

// MARK: - Options

/// Options every case shares.
struct CommonOptions: ParsableArguments {
    @Option(help: "The tunnel binary (default: `tunnel` next to this program).")
    var tunnel: String = CommonOptions.builtTunnel

    @Option(name: .customLong("sshd-option"), help: "An extra sshd_config line, e.g. 'MACs hmac-sha2-512' (repeatable).")
    var sshdOptions: [String] = []

    @Option(help: "Runs per figure; tunnel and ssh -L alternate, the median is reported.")
    var runs = 3

    @Flag(help: "Tiny sizes and durations, one run: checks that every case moves its bytes (whole run well under 60 s).")
    var smoke = false

    func validate() throws {
        guard runs >= 1 && runs <= 100 else { throw ValidationError("--runs must be between 1 and 100") }
    }

    static var builtTunnel: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("tunnel").path
    }
}

struct ThroughputOptions: ParsableArguments {
    @Option(help: "MiB per bulk transfer.")
    var mib = 1024
    @Flag(help: "Measure tunnel only, not ssh -L.")
    var skipSSH = false
    @Flag(name: .customLong("skip-libssh2"), help: "Leave out the plain libssh2 loop.")
    var skipLibSSH2 = false

    func validate() throws {
        guard mib >= 1 && mib <= 65536 else { throw ValidationError("--mib must be between 1 and 65536") }
    }

    func makeCase(smoke: Bool) -> ThroughputCase {
        ThroughputCase(mebibytes: smoke ? 4 : mib, skipSSH: skipSSH, skipLibSSH2: skipLibSSH2)
    }

    func makeRemoteCase(smoke: Bool) -> RemoteThroughputCase {
        RemoteThroughputCase(mebibytes: smoke ? 4 : mib, skipSSH: skipSSH)
    }
}

struct LongLinkOptions: ParsableArguments {
    @Option(name: .customLong("round-trip"), help: "Round trip the relay adds, in ms (repeatable; default 50 and 100).")
    var roundTrips: [Int] = []
    @Option(help: "MiB per download over the long link.")
    var longLinkMib = 256
    @Option(help: "MiB per upload over the long link (bounded by sshd's window for everyone).")
    var longLinkUploadMib = 64
    @Flag(name: .customLong("long-link-skip-libssh2"), help: "Leave out the plain libssh2 loop over the long link.")
    var skipLibSSH2 = false

    func validate() throws {
        guard roundTrips.allSatisfy({ $0 >= 0 && $0 <= 2000 }) else { throw ValidationError("--round-trip must be between 0 and 2000 ms") }
        guard longLinkMib >= 1 && longLinkMib <= 65536 else { throw ValidationError("--long-link-mib must be between 1 and 65536") }
        guard longLinkUploadMib >= 1 && longLinkUploadMib <= 65536 else { throw ValidationError("--long-link-upload-mib must be between 1 and 65536") }
    }

    func makeCase(smoke: Bool) -> LongLinkCase {
        smoke ? LongLinkCase(roundTrips: [20], mebibytes: 4, uploadMebibytes: 2, skipLibSSH2: skipLibSSH2)
            : LongLinkCase(roundTrips: roundTrips.isEmpty ? [50, 100] : roundTrips, mebibytes: longLinkMib,
                           uploadMebibytes: longLinkUploadMib, skipLibSSH2: skipLibSSH2)
    }
}

struct ParallelOptions: ParsableArguments {
    @Option(name: .customLong("streams"), help: "Parallel downloads in the parallel case, one measurement per count (repeatable).")
    var streamCounts: [Int] = [8, 64]
    @Option(name: .customLong("parallel-mib"), help: "MiB moved in all by one parallel measurement, split across its streams.")
    var parallelMib = 1024
    @Option(help: "TunnelSessions of the second tunnel in the parallel case (default: the number of cores, at least 2).")
    var sessions = max(2, min(16, ProcessInfo.processInfo.activeProcessorCount))

    func validate() throws {
        guard streamCounts.allSatisfy({ $0 >= 1 && $0 <= 256 }) else { throw ValidationError("--streams must be between 1 and 256") }
        guard parallelMib >= 1 else { throw ValidationError("--parallel-mib must be at least 1") }
        guard (1...16).contains(sessions) else { throw ValidationError("--sessions must be between 1 and 16") }
    }

    func makeCase(smoke: Bool, skipSSH: Bool) -> ParallelCase {
        smoke ? ParallelCase(streamCounts: [4], mebibytes: 8, sessions: sessions, skipSSH: skipSSH)
            : ParallelCase(streamCounts: streamCounts, mebibytes: parallelMib, sessions: sessions, skipSSH: skipSSH)
    }
}

struct ManyClientsOptions: ParsableArguments {
    @Option(help: "Concurrent clients in the many-clients case.")
    var clients = 100
    @Option(help: "Seconds each program is measured in the many-clients case.")
    var clientSeconds: Double = 10

    func validate() throws {
        guard clients >= 1 && clients <= 2000 else { throw ValidationError("--clients must be between 1 and 2000") }
        guard clientSeconds > 0 && clientSeconds <= 600 else { throw ValidationError("--client-seconds must be in (0, 600]") }
    }

    func makeCase(smoke: Bool) -> ManyClientsCase {
        smoke ? ManyClientsCase(clients: min(clients, 8), seconds: 0.5) : ManyClientsCase(clients: clients, seconds: clientSeconds)
    }
}

struct LatencyOptions: ParsableArguments {
    @Option(help: "Round trips timed in the one-client latency case.")
    var latencyRoundTrips = 5000

    func validate() throws {
        guard latencyRoundTrips >= 1 && latencyRoundTrips <= 10_000_000 else { throw ValidationError("--latency-round-trips must be between 1 and 10,000,000") }
    }

    func makeCase(smoke: Bool) -> OneClientLatencyCase {
        OneClientLatencyCase(roundTrips: smoke ? 100 : latencyRoundTrips)
    }
}

struct IdleOptions: ParsableArguments {
    @Option(help: "Idle forwarded connections held open in the idle case.")
    var idle = 1000
    @Option(help: "Sequential round trips whose CPU time is measured in the idle case.")
    var idleRoundTrips = 3000

    func validate() throws {
        guard idle >= 1 && idle <= 10_000 else { throw ValidationError("--idle must be between 1 and 10,000") }
        guard idleRoundTrips >= 1 && idleRoundTrips <= 10_000_000 else { throw ValidationError("--idle-round-trips must be between 1 and 10,000,000") }
    }

    func makeCase(smoke: Bool) -> IdleConnectionsCase {
        smoke ? IdleConnectionsCase(idle: 50, roundTrips: 200) : IdleConnectionsCase(idle: idle, roundTrips: idleRoundTrips)
    }
}

struct ConnectRateOptions: ParsableArguments {
    @Option(help: "Seconds each program is measured in the connection-rate case.")
    var connectSeconds: Double = 5

    func validate() throws {
        guard connectSeconds > 0 && connectSeconds <= 600 else { throw ValidationError("--connect-seconds must be in (0, 600]") }
    }

    func makeCase(smoke: Bool) -> ConnectionRateCase {
        ConnectionRateCase(seconds: smoke ? 0.5 : connectSeconds)
    }
}

struct ReconnectOptions: ParsableArguments {
    @Option(help: "sshd kill/restart cycles timed in the reconnect case.")
    var cycles = 10
    @Option(help: "Kill/restart cycles in all, for the descriptor and memory figures.")
    var leakCycles = 100
    @Option(help: "Seconds of outage whose CPU cost is measured.")
    var outageSeconds: Double = 30

    func validate() throws {
        guard cycles >= 1 && cycles <= 1000 else { throw ValidationError("--cycles must be between 1 and 1000") }
        guard leakCycles >= 1 && leakCycles <= 10_000 else { throw ValidationError("--leak-cycles must be between 1 and 10,000") }
        guard outageSeconds >= 0 && outageSeconds <= 600 else { throw ValidationError("--outage-seconds must be in [0, 600]") }
    }

    func makeCase(smoke: Bool) -> ReconnectCase {
        smoke ? .smoke() : ReconnectCase(cycles: cycles, leakCycles: leakCycles, outageSeconds: outageSeconds, interval: 2, countMax: 3)
    }
}

struct ProxyOptions: ParsableArguments {
    @Option(help: "SOCKS5 connects (each with its first round trip) timed per run in the proxy case.")
    var proxyConnects = 500
    @Option(help: "MiB per bulk transfer in the proxy case.")
    var proxyMib = 512

    func validate() throws {
        guard proxyConnects >= 1 && proxyConnects <= 1_000_000 else { throw ValidationError("--proxy-connects must be between 1 and 1,000,000") }
        guard proxyMib >= 1 && proxyMib <= 65536 else { throw ValidationError("--proxy-mib must be between 1 and 65536") }
    }

    func makeCase(smoke: Bool) -> ProxyCase {
        smoke ? ProxyCase(connects: 20, mebibytes: 4) : ProxyCase(connects: proxyConnects, mebibytes: proxyMib)
    }
}

// MARK: - Subcommands: each selects cases and hands them to BenchRun

extension TunnelBench {
    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every case (the default).")
        @OptionGroup var common: CommonOptions
        @OptionGroup var throughput: ThroughputOptions
        @OptionGroup var longLink: LongLinkOptions
        @OptionGroup var manyClients: ManyClientsOptions
        @OptionGroup var latency: LatencyOptions
        @OptionGroup var idle: IdleOptions
        @OptionGroup var connectRate: ConnectRateOptions
        @OptionGroup var reconnect: ReconnectOptions
        @OptionGroup var proxy: ProxyOptions
        @OptionGroup var parallel: ParallelOptions

        func run() throws {
            let smoke = common.smoke
            try BenchRun(common, parse: true, filesNeeded: idle.makeCase(smoke: smoke).filesNeeded).execute { context in
                [("throughput", { try throughput.makeCase(smoke: smoke).run(context) }),
                 ("long link", { try longLink.makeCase(smoke: smoke).run(context) }),
                 ("remote-forward throughput", { try throughput.makeRemoteCase(smoke: smoke).run(context) }),
                 ("parallel", { try parallel.makeCase(smoke: smoke, skipSSH: throughput.skipSSH).run(context) }),
                 ("many clients", { try manyClients.makeCase(smoke: smoke).run(context) }),
                 ("one client latency", { try latency.makeCase(smoke: smoke).run(context) }),
                 ("idle connections", { try idle.makeCase(smoke: smoke).run(context) }),
                 ("start-up", { try StartupCase().run(context) }),
                 ("connection rate", { try connectRate.makeCase(smoke: smoke).run(context) }),
                 ("reconnect", { try reconnect.makeCase(smoke: smoke).run(context) }),
                 ("proxy", { try proxy.makeCase(smoke: smoke).run(context) })]
            }
        }
    }

    struct Parse: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Config parsing speed only (no sshd).")
        func run() throws { try ParseCase().run() }
    }

    struct Throughput: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bulk MB/s both ways: no tunnel, tunnel up, a plain libssh2 loop, ssh -L with three ciphers.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ThroughputOptions
        func run() throws {
            try BenchRun(common).execute { context in [("throughput", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct LongLink: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "long-link",
            abstract: "Bulk MB/s over a relay that adds a round trip (50 and 100 ms): tunnel vs ssh -L vs a plain libssh2 loop.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: LongLinkOptions
        func run() throws {
            try BenchRun(common).execute { context in [("long link", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct Parallel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Aggregate MB/s of 8 and 64 parallel downloads: tunnel with one SSH session, with TunnelSessions, and ssh -L.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ParallelOptions
        @Flag(help: "Measure tunnel only, not ssh -L.")
        var skipSSH = false
        func run() throws {
            try BenchRun(common).execute { context in [("parallel", { try options.makeCase(smoke: common.smoke, skipSSH: skipSSH).run(context) })] }
        }
    }

    struct RemoteThroughput: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bulk MB/s both ways through a remote forward: tunnel's RemoteForward against ssh -R (and tunnel's LocalForward).")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ThroughputOptions
        func run() throws {
            try BenchRun(common).execute { context in [("remote-forward throughput", { try options.makeRemoteCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct ManyClients: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "N concurrent clients doing 64-byte round trips: requests/s, median and p99 latency.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ManyClientsOptions
        func run() throws {
            try BenchRun(common, filesNeeded: 4 * options.clients + 512).execute { context in
                [("many clients", { try options.makeCase(smoke: common.smoke).run(context) })]
            }
        }
    }

    struct Latency: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One client's 64-byte round trip: median and p99.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: LatencyOptions
        func run() throws {
            try BenchRun(common).execute { context in [("one client latency", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct Idle: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Forwarder CPU per round trip with 0 and with N idle forwarded connections open.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: IdleOptions
        func run() throws {
            let idleCase = options.makeCase(smoke: common.smoke)
            try BenchRun(common, filesNeeded: idleCase.filesNeeded).execute { context in
                [("idle connections", { try idleCase.run(context) })]
            }
        }
    }

    struct Reconnect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Through sshd kills and freezes: time to serve again, detection time, CPU while down, fds and RSS.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ReconnectOptions
        func run() throws {
            try BenchRun(common).execute { context in [("reconnect", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct Proxy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "DynamicForward: SOCKS5 connect + first round trip vs ssh -D; bulk MB/s through the proxy vs a LocalForward.")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ProxyOptions
        func run() throws {
            try BenchRun(common).execute { context in [("proxy", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }

    struct Startup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "From starting tunnel up / ssh -N -L to the first forwarded round trip.")
        @OptionGroup var common: CommonOptions
        func run() throws {
            try BenchRun(common).execute { context in [("start-up", { try StartupCase().run(context) })] }
        }
    }

    struct ConnectRate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sequential new connections per second (connect, 64-byte round trip, close).")
        @OptionGroup var common: CommonOptions
        @OptionGroup var options: ConnectRateOptions
        func run() throws {
            try BenchRun(common).execute { context in [("connection rate", { try options.makeCase(smoke: common.smoke).run(context) })] }
        }
    }
}

// MARK: - One run

/// Sets up what cases share, runs each (a failing case is reported and the others still run), prints the
/// summary and the machine's load, and exits non-zero if any case failed.
struct BenchRun {
    let common: CommonOptions
    let parse: Bool
    let filesNeeded: Int

    init(_ common: CommonOptions, parse: Bool = false, filesNeeded: Int = 1024) {
        self.common = common
        self.parse = parse
        self.filesNeeded = filesNeeded
    }

    func execute(_ cases: (BenchContext) -> [(name: String, run: () throws -> Void)]) throws {
        let started = monotonicNanoseconds()
        let files = try FileLimit.raise(toAtLeast: filesNeeded)
        printNow("tunnel-bench \(common.smoke ? "--smoke " : "")at \(MachineLoad.utcNow()); load before: \(MachineLoad.loadAverage())")
        printNow("open-file limit \(files) (inherited by sshd, ssh and tunnel); tunnel binary \(common.tunnel)")
        printNow("libssh2 \(Versions.libssh2), \(Versions.openSSH)")
        var failures: [String] = []
        if parse {
            do { try ParseCase().run() } catch { failures.append("config parsing: \(error)") }
        }
        let context = try BenchContext(tunnelBinary: common.tunnel, sshdOptions: common.sshdOptions,
                                       runs: common.smoke ? 1 : common.runs)
        defer { context.stop() }
        for (name, run) in cases(context) {
            do {
                try run()
            } catch {
                printNow("FAILED: \(name): \(error)")
                failures.append("\(name): \(error)")
            }
        }
        ComparisonTable.print(context.comparisons, title: "== summary: tunnel up vs ssh -L, same sshd, same run")
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        print("\nload after: \(MachineLoad.loadAverage()); took \(String(format: "%.1f", seconds)) s")
        guard failures.isEmpty else {
            print("\(failures.count) case(s) failed:\n" + failures.map { "  \($0)" }.joined(separator: "\n"))
            throw ExitCode.failure
        }
    }
}

/// What was measured against, printed with every run.
enum Versions {
    static var libssh2: String { libssh2_version(0).map { String(cString: $0) } ?? "?" }

    static var openSSH: String {
        let output = try? ProcessRunner("/usr/bin/ssh", ["-V"]).run(timeout: 10)
        return output.map { $0.stderrText.trimmingCharacters(in: .whitespacesAndNewlines) } ?? "ssh -V failed"
    }
}

/// The machine's load, printed with every run: on a shared machine it is part of the result.
enum MachineLoad {
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?"
        return text.split(separator: " ").prefix(3).joined(separator: " ") + " (1, 5, 15 min) on \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }

    static func utcNow() -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date())
    }
}
