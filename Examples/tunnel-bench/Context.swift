// What every case shares in one run: the sshd, the echo target, the tunnel binary, the number of runs, and the
// loop that measures tunnel and OpenSSH alternately so slow drifts in machine load hit both alike.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

final class BenchContext {
    let sshd: SSHDFixture
    let echo: EchoServer
    let tunnelBinary: String
    let runs: Int
    /// Every comparison measured so far, for the summary table at the end.
    private(set) var comparisons: [Comparison] = []

    init(tunnelBinary: String, sshdOptions: [String], runs: Int) throws {
        guard access(tunnelBinary, X_OK) == 0 else {
            throw BenchError("\(tunnelBinary) is not an executable: build it first (swift build -c release) or pass --tunnel PATH")
        }
        self.tunnelBinary = tunnelBinary
        self.runs = max(1, runs)
        var options = SSHDFixture.Options()
        options.logLevel = "ERROR"
        options.extraConfig = sshdOptions
        sshd = try SSHDFixture(options: options)
        echo = try EchoServer()
    }

    func stop() {
        echo.stop()
        sshd.stop()
    }

    var tunnel: ForwarderKind { .tunnel(binary: tunnelBinary) }

    func record(_ rows: [Comparison]) { comparisons += rows }

    /// Measures `measure` `runs` times for tunnel and for `ssh -L` (alternating, each time with a freshly started
    /// forwarder to the echo server) and records the median of each metric as a comparison.
    func compare(caseName: String, metrics: [Metric], _ measure: (Forwarder) throws -> [Double]) throws {
        var values: [[Double]] = [[], []]   // [program][run * metrics.count + metric]
        for run in 1...runs {
            for (index, kind) in [tunnel, ForwarderKind.defaultOpenSSH].enumerated() {
                let figures = try Forwarder.with(kind, sshd: sshd, targetPort: echo.port) { try measure($0) }
                precondition(figures.count == metrics.count, "\(caseName) returned \(figures.count) figures for \(metrics.count) metrics")
                values[index] += figures
                let shown = zip(metrics, figures).map { "\($0.name) \(ComparisonTable.format($1)) \($0.unit)" }
                printNow("  run \(run)/\(runs) \(kind.label): " + shown.joined(separator: ", "))
            }
        }
        let rows = metrics.enumerated().map { index, metric in
            let pick = { (program: Int) in Stats.median(stride(from: index, to: values[program].count, by: metrics.count).map { values[program][$0] }) }
            return Comparison(caseName: caseName, metric: metric.name, unit: metric.unit,
                              tunnel: pick(0), openSSH: pick(1), higherIsBetter: metric.higherIsBetter)
        }
        record(rows)
        ComparisonTable.print(rows, title: "\(caseName) (median of \(runs) run\(runs == 1 ? "" : "s"))")
    }
}

/// A named figure a case reports.
struct Metric {
    var name: String
    var unit: String
    var higherIsBetter: Bool
}

/// Raises the soft limit on open files to what the idle case needs (the bench holds both ends of every
/// connection). Children (sshd, ssh, tunnel) inherit it.
enum FileLimit {
    static func raise(toAtLeast needed: Int) throws -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw BenchError.errno("getrlimit(RLIMIT_NOFILE)") }
        let target = rlim_t(max(needed, 65536))
        if limit.rlim_cur < target {
            limit.rlim_cur = min(target, limit.rlim_max)
            guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw BenchError.errno("setrlimit(RLIMIT_NOFILE)") }
        }
        guard limit.rlim_cur >= rlim_t(needed) else {
            throw BenchError("need \(needed) open files but the hard limit is \(limit.rlim_max): raise it (ulimit -Hn) or use a smaller --idle")
        }
        return Int(limit.rlim_cur)
    }
}
