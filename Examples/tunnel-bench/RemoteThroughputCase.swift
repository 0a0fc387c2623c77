// Bulk throughput through a remote forward (`RemoteForward`, `ssh -R`): the client connects to the port sshd
// listens on, and the forwarder connects each connection to the bulk server from its side. tunnel's remote forward
// against ssh -R with OpenSSH's default cipher and with tunnel's, and against tunnel's own local forward.
import Foundation
import TunnelTestSupport

struct RemoteThroughputCase {
    var mebibytes: Int
    var skipSSH: Bool

    static let openSSHVariants: [ForwarderKind] = [
        .openSSH(label: "ssh -R (OpenSSH default: chacha20-poly1305)", options: []),
        .openSSH(label: "ssh -R -c aes128-ctr -m hmac-sha2-256", options: ["-c", "aes128-ctr", "-m", "hmac-sha2-256"]),
    ]

    private final class Path {
        let label: String
        let forwarder: Forwarder
        var down: [Double] = []
        var up: [Double] = []
        init(_ label: String, _ forwarder: Forwarder) {
            self.label = label
            self.forwarder = forwarder
        }
    }

    func run(_ context: BenchContext) throws {
        let bytes = mebibytes << 20
        let server = try BulkServer(bytes: bytes)
        defer { server.stop() }
        printNow("\n== remote-forward throughput: sshd on \(context.sshd.hostAndPort), \(mebibytes) MiB per transfer, \(context.runs) runs, median MB/s (10^6 B/s)")

        // As in the local case: every forwarder runs for the whole case and the paths take turns in each run.
        var paths: [Path] = []
        defer { paths.forEach { try? $0.forwarder.stop() } }
        func start(_ kind: ForwarderKind, label: String, remote: Bool) throws {
            paths.append(Path(label, try Forwarder(kind, sshd: context.sshd, targetPort: server.port, remote: remote)))
        }
        try start(context.tunnel, label: "tunnel up, RemoteForward", remote: true)
        try start(context.tunnel, label: "tunnel up, LocalForward (for reference)", remote: false)
        if !skipSSH { for kind in Self.openSSHVariants { try start(kind, label: kind.label, remote: true) } }

        for run in 1...context.runs {
            for path in paths {
                path.down.append(try BulkTransfer.measure(port: path.forwarder.localPort, bytes: bytes, download: true))
                path.up.append(try BulkTransfer.measure(port: path.forwarder.localPort, bytes: bytes, download: false))
                printNow("  run \(run)/\(context.runs) \(path.label): download \(ComparisonTable.format(path.down.last!)), upload \(ComparisonTable.format(path.up.last!))")
            }
        }
        // What each session uses: tunnel's as negotiated (its control socket), ssh's as its -c/-m ask for.
        printNow("\nnegotiated algorithms:")
        for path in paths { printNow("  \(path.label): \(path.forwarder.negotiated())") }
        let rss = paths.map { path in path.forwarder.peakRSSKiB.map { "\($0 / 1024) MiB" } ?? "-" }
        for path in paths { try path.forwarder.stop() }   // throws if one died during the case
        let stopped = paths
        paths = []

        // "Download" is what the client on the server's side receives: the bulk server here sends it.
        printNow("\n| path | download | upload | peak RSS |\n|---|---:|---:|---:|")
        for (path, rss) in zip(stopped, rss) {
            printNow("| \(path.label) | \(String(format: "%.0f", Stats.median(path.down))) | \(String(format: "%.0f", Stats.median(path.up))) | \(rss) |")
        }
        let tunnel = stopped[0]
        var comparisons: [Comparison] = []
        for (index, name) in [(0, "ssh -R, OpenSSH default cipher"), (1, "ssh -R with tunnel's cipher and MAC")] {
            guard let ssh = stopped.first(where: { index < Self.openSSHVariants.count && $0.label == Self.openSSHVariants[index].label }) else { continue }
            for (metric, ours, theirs) in [("download", tunnel.down, ssh.down), ("upload", tunnel.up, ssh.up)] {
                comparisons.append(Comparison(caseName: "remote bulk, \(mebibytes) MiB, vs \(name)", metric: metric, unit: "MB/s",
                                              tunnel: Stats.median(ours), openSSH: Stats.median(theirs), higherIsBetter: true))
            }
        }
        context.record(comparisons)
    }
}
