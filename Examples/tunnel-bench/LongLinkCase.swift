// Bulk throughput over a long link: a relay adds a fixed delay each way between the forwarder and sshd, so one
// stream moves at most one channel window per round trip. tunnel grows its receive window while the client keeps
// up (README "Receive windows"); OpenSSH and a plain libssh2 loop keep a fixed 2 MiB one.
import Foundation
import TunnelTestSupport

struct LongLinkCase {
    /// Round trips added by the relay, in milliseconds.
    var roundTrips: [Int]
    var mebibytes: Int
    /// Uploads are bounded by sshd's window, the same for everyone: measured smaller, to say so.
    var uploadMebibytes: Int
    var skipLibSSH2: Bool

    private final class Path {
        enum Route {
            case forwarder(Forwarder)
            case plainLibSSH2
        }
        let label: String
        let route: Route
        var down: [Double] = []
        var up: [Double] = []
        init(_ label: String, _ route: Route) {
            self.label = label
            self.route = route
        }
    }

    func run(_ context: BenchContext) throws {
        for roundTrip in roundTrips { try run(context, roundTripMilliseconds: roundTrip) }
    }

    private func run(_ context: BenchContext, roundTripMilliseconds: Int) throws {
        let bytes = mebibytes << 20, uploadBytes = uploadMebibytes << 20
        let server = try BulkServer(bytes: bytes)
        defer { server.stop() }
        let relay = try TCPTestServer(behavior: .delayRelay(targetPort: context.sshd.port, oneWayDelay: Double(roundTripMilliseconds) / 2000))
        defer { relay.stop() }
        let name = "long link, \(roundTripMilliseconds) ms round trip"
        printNow("\n== \(name): relay 127.0.0.1:\(relay.port) -> sshd \(context.sshd.hostAndPort), download \(mebibytes) MiB, "
            + "upload \(uploadMebibytes) MiB, \(context.runs) runs, median MB/s (10^6 B/s)")

        var forwarders: [Forwarder] = []
        defer { forwarders.forEach { try? $0.stop() } }
        func start(_ kind: ForwarderKind, label: String) throws -> Path {
            let forwarder = try Forwarder(kind, sshd: context.sshd, targetPort: server.port, via: relay)
            forwarders.append(forwarder)
            return Path(label, .forwarder(forwarder))
        }
        var paths = [try start(context.tunnel, label: "tunnel up (window grows from 2 MiB)"),
                     try start(.defaultOpenSSH, label: "ssh -L (fixed 2 MiB window)")]
        if !skipLibSSH2 { paths.append(Path("plain libssh2 loop (fixed 2 MiB window)", .plainLibSSH2)) }

        for run in 1...context.runs {
            for path in paths {
                switch path.route {
                case .forwarder(let forwarder):
                    path.down.append(try BulkTransfer.measure(port: forwarder.localPort, bytes: bytes, download: true))
                    // The bulk server counts what an upload sends, whatever its download size.
                    path.up.append(try BulkTransfer.measure(port: forwarder.localPort, bytes: uploadBytes, download: false))
                case .plainLibSSH2:
                    path.down.append(try PlainLibSSH2Download.measure(sshd: context.sshd, targetPort: server.port, bytes: bytes, via: relay))
                }
                printNow("  run \(run)/\(context.runs) \(path.label): download \(ComparisonTable.format(path.down.last!))"
                    + (path.up.last.map { ", upload \(ComparisonTable.format($0))" } ?? ""))
            }
        }
        var rss: [String] = []
        for path in paths {
            if case .forwarder(let forwarder) = path.route, let kib = forwarder.peakRSSKiB { rss.append("\(kib / 1024) MiB") } else { rss.append("-") }
        }
        for forwarder in forwarders { try forwarder.stop() }   // throws if one died during the case
        forwarders = []

        printNow("\n| path (\(roundTripMilliseconds) ms) | download | upload | peak RSS |\n|---|---:|---:|---:|")
        for (path, rss) in zip(paths, rss) {
            let up = path.up.isEmpty ? "-" : String(format: "%.0f", Stats.median(path.up))
            printNow("| \(path.label) | \(String(format: "%.0f", Stats.median(path.down))) | \(up) | \(rss) |")
        }
        let tunnel = paths[0], ssh = paths[1]
        context.record([
            Comparison(caseName: "\(name), \(mebibytes) MiB", metric: "download", unit: "MB/s",
                       tunnel: Stats.median(tunnel.down), openSSH: Stats.median(ssh.down), higherIsBetter: true),
            Comparison(caseName: "\(name), \(uploadMebibytes) MiB (sshd's window)", metric: "upload", unit: "MB/s",
                       tunnel: Stats.median(tunnel.up), openSSH: Stats.median(ssh.up), higherIsBetter: true),
        ])
        if paths.count > 2 {
            printNow("tunnel / plain libssh2 loop (download): \(String(format: "%.2f", Stats.median(tunnel.down) / max(Stats.median(paths[2].down), 0.001)))x")
        }
    }
}
