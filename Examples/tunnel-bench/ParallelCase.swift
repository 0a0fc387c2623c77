// Parallel bulk downloads, aggregate MB/s: tunnel with one SSH session, tunnel with `TunnelSessions 2` (one
// session per core here), and ssh -L. One SSH session is one encryption stream, so one core at most on each side;
// more sessions let the streams use more cores, if the machine has them to spare (sshd needs cores too).
import Foundation
import TunnelTestSupport

struct ParallelCase {
    /// How many downloads run at once, one measurement per count.
    var streamCounts: [Int]
    /// MiB moved in all by one measurement, split evenly across its streams.
    var mebibytes: Int
    var sessions: Int
    var skipSSH: Bool

    private final class Path {
        let label: String
        let forwarder: Forwarder
        var rates: [Double] = []
        init(_ label: String, _ forwarder: Forwarder) {
            self.label = label
            self.forwarder = forwarder
        }
    }

    func run(_ context: BenchContext) throws {
        printNow("\n== parallel: \(streamCounts.map(String.init).joined(separator: " and ")) downloads at once, \(mebibytes) MiB in all, "
            + "\(context.runs) runs, median aggregate MB/s (10^6 B/s); \(ProcessInfo.processInfo.activeProcessorCount) cores")
        var comparisons: [Comparison] = []
        var table = "\n| streams | tunnel, 1 session | tunnel, TunnelSessions \(sessions) | ssh -L | sessions \(sessions) / 1 | sessions \(sessions) / ssh -L |\n|---:|---:|---:|---:|---:|---:|"
        for streams in streamCounts {
            let perStream = (mebibytes << 20) / streams
            let server = try BulkServer(bytes: perStream)
            defer { server.stop() }
            // All forwarders run through the measurement and take turns in each run, so load changes hit all alike.
            var paths: [Path] = []
            defer { paths.forEach { try? $0.forwarder.stop() } }
            paths.append(Path("tunnel up, 1 session", try Forwarder(context.tunnel, sshd: context.sshd, targetPort: server.port)))
            paths.append(Path("tunnel up, TunnelSessions \(sessions)",
                              try Forwarder(context.tunnel, sshd: context.sshd, targetPort: server.port, extraConfig: ["TunnelSessions \(sessions)"])))
            if !skipSSH { paths.append(Path("ssh -L", try Forwarder(.defaultOpenSSH, sshd: context.sshd, targetPort: server.port))) }
            for run in 1...context.runs {
                for path in paths {
                    path.rates.append(try Self.measure(port: path.forwarder.localPort, streams: streams, bytesPerStream: perStream))
                    printNow("  \(streams) streams, run \(run)/\(context.runs), \(path.label): \(ComparisonTable.format(path.rates.last!)) MB/s")
                }
            }
            for path in paths { try path.forwarder.stop() }   // throws if one died during the measurement
            let medians = paths.map { Stats.median($0.rates) }
            paths = []
            let ssh = medians.count > 2 ? medians[2] : .nan
            table += "\n| \(streams) | \(String(format: "%.0f", medians[0])) | \(String(format: "%.0f", medians[1])) | "
                + "\(ssh.isNaN ? "-" : String(format: "%.0f", ssh)) | \(String(format: "%.2f", medians[1] / medians[0]))x | "
                + "\(ssh.isNaN ? "-" : String(format: "%.2f", medians[1] / ssh) + "x") |"
            if !ssh.isNaN {
                comparisons.append(Comparison(caseName: "parallel, \(streams) streams, 1 session", metric: "download", unit: "MB/s",
                                              tunnel: medians[0], openSSH: ssh, higherIsBetter: true))
                comparisons.append(Comparison(caseName: "parallel, \(streams) streams, TunnelSessions \(sessions)", metric: "download",
                                              unit: "MB/s", tunnel: medians[1], openSSH: ssh, higherIsBetter: true))
            }
        }
        printNow(table)
        context.record(comparisons)
    }

    /// `streams` downloads through `port` at once, each of `bytesPerStream`; aggregate MB/s from the first start to
    /// the last end.
    static func measure(port: Int, streams: Int, bytesPerStream: Int) throws -> Double {
        let failures = FailureList()
        let start = monotonicNanoseconds()
        runParallel(count: streams, threads: streams) { _ in
            do {
                _ = try BulkTransfer.measure(port: port, bytes: bytesPerStream, download: true)
            } catch {
                failures.add("\(error)")
            }
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        let failed = failures.all
        if let first = failed.first {
            throw BenchError("\(failed.count) of \(streams) parallel downloads through port \(port) failed: \(first)")
        }
        return Double(bytesPerStream * streams) / seconds / 1_000_000
    }
}

/// What the download threads report, gathered under a lock.
private final class FailureList: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func add(_ message: String) { lock.withLock { messages.append(message) } }
    var all: [String] { lock.withLock { messages } }
}
