// Bulk throughput, one stream at a time, in both directions: no tunnel, tunnel up, a plain libssh2 loop (the
// library tunnel is built on, with nothing around it), and ssh -L with several ciphers.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

struct ThroughputCase {
    var mebibytes: Int
    var skipSSH: Bool
    var skipLibSSH2: Bool

    static let openSSHVariants: [ForwarderKind] = [
        .openSSH(label: "ssh -L (OpenSSH default: chacha20-poly1305)", options: []),
        .openSSH(label: "ssh -L -c aes128-ctr -m hmac-sha2-256", options: ["-c", "aes128-ctr", "-m", "hmac-sha2-256"]),
        .openSSH(label: "ssh -L -c aes128-gcm@openssh.com", options: ["-c", "aes128-gcm@openssh.com"]),
    ]

    private struct Row {
        var label: String
        var download: Double
        var upload: Double?
        var rss: String
    }

    func run(_ context: BenchContext) throws {
        let bytes = mebibytes << 20
        let server = try BulkServer(bytes: bytes)
        defer { server.stop() }
        printNow("\n== throughput: sshd on \(context.sshd.hostAndPort), \(mebibytes) MiB per transfer, \(context.runs) runs, median MB/s (10^6 B/s)")

        var rows: [Row] = []
        func measureRuns(_ label: String, port: Int, upload: Bool = true, pid: () -> Int? = { nil }) throws {
            var down: [Double] = [], up: [Double] = []
            for _ in 0..<context.runs {
                down.append(try BulkTransfer.measure(port: port, bytes: bytes, download: true))
                if upload { up.append(try BulkTransfer.measure(port: port, bytes: bytes, download: false)) }
            }
            rows.append(Row(label: label, download: Stats.median(down), upload: upload ? Stats.median(up) : nil,
                            rss: pid().map { "\($0 / 1024) MiB" } ?? "-"))
            printNow("  \(label): download \(ComparisonTable.format(Stats.median(down)))" + (upload ? ", upload \(ComparisonTable.format(Stats.median(up)))" : ""))
        }

        try measureRuns("direct (no tunnel)", port: server.port)
        try Forwarder.with(context.tunnel, sshd: context.sshd, targetPort: server.port) { forwarder in
            try measureRuns("tunnel up (libssh2, aes128-ctr + hmac-sha2-256)", port: forwarder.localPort, pid: { forwarder.peakRSSKiB })
        }
        if !skipLibSSH2 {
            var down: [Double] = []
            for _ in 0..<context.runs {
                down.append(try PlainLibSSH2Download.measure(sshd: context.sshd, targetPort: server.port, bytes: bytes))
            }
            rows.append(Row(label: "plain libssh2 loop (blocking, one channel, aes128-ctr + hmac-sha2-256)",
                            download: Stats.median(down), upload: nil, rss: "-"))
            printNow("  plain libssh2 loop: download \(ComparisonTable.format(Stats.median(down)))")
        }
        if !skipSSH {
            for kind in Self.openSSHVariants {
                try Forwarder.with(kind, sshd: context.sshd, targetPort: server.port) { forwarder in
                    try measureRuns(kind.label, port: forwarder.localPort, pid: { forwarder.peakRSSKiB })
                }
            }
        }
        printRows(rows)
        recordComparisons(rows, context)
    }

    /// tunnel against OpenSSH's default and against OpenSSH with tunnel's algorithms, for the summary table.
    private func recordComparisons(_ rows: [Row], _ context: BenchContext) {
        guard let tunnel = rows.first(where: { $0.label.hasPrefix("tunnel up") }) else { return }
        var comparisons: [Comparison] = []
        for (index, name) in [(0, "OpenSSH default cipher"), (1, "OpenSSH with tunnel's cipher and MAC")] {
            guard index < Self.openSSHVariants.count,
                  let ssh = rows.first(where: { $0.label == Self.openSSHVariants[index].label }) else { continue }
            comparisons.append(Comparison(caseName: "bulk, \(mebibytes) MiB, vs \(name)", metric: "download", unit: "MB/s",
                                          tunnel: tunnel.download, openSSH: ssh.download, higherIsBetter: true))
            comparisons.append(Comparison(caseName: "bulk, \(mebibytes) MiB, vs \(name)", metric: "upload", unit: "MB/s",
                                          tunnel: tunnel.upload ?? 0, openSSH: ssh.upload ?? 0, higherIsBetter: true))
        }
        context.record(comparisons)
    }

    private func printRows(_ rows: [Row]) {
        printNow("\n| path | download | upload | peak RSS |\n|---|---:|---:|---:|")
        for row in rows {
            let up = row.upload.map { String(format: "%.0f", $0) } ?? "-"
            printNow("| \(row.label) | \(String(format: "%.0f", row.download)) | \(up) | \(row.rss) |")
        }
    }
}

/// One bulk transfer through a port to a `BulkServer`.
enum BulkTransfer {
    /// Moves `bytes` through `port` in one direction and returns MB/s (10^6 bytes per second). Every receive and
    /// send gives up after 30 s without progress.
    static func measure(port: Int, bytes: Int, download: Bool) throws -> Double {
        let socket = try BlockingSocket.connect(port: port, timeout: 30)
        defer { socket.close() }
        var mode = download ? UInt8(ascii: "D") : UInt8(ascii: "U")
        let start = monotonicNanoseconds()
        try withUnsafeBytes(of: &mode) { try socket.sendAll($0) }
        var buffer = [UInt8](repeating: 0x33, count: 1 << 20)
        var total = 0
        if download {
            // Bounded by size: the server sends exactly `bytes`, then closes; more would be an error.
            while total <= bytes {
                let n = try buffer.withUnsafeMutableBytes { try socket.receiveSome($0) }
                if n == 0 { break }
                total += n
            }
        } else {
            var left = bytes
            while left > 0 {
                let chunk = min(left, buffer.count)
                try buffer.withUnsafeBytes { try socket.sendAll(UnsafeRawBufferPointer(rebasing: $0[0..<chunk])) }
                left -= chunk
            }
            socket.shutdownWrite()
            var answer = [UInt8](repeating: 0, count: 64)
            let n = try answer.withUnsafeMutableBytes { try socket.receiveSome($0) }
            total = Int(String(decoding: answer.prefix(n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        guard total == bytes else {
            throw BenchError("\(download ? "download" : "upload") through port \(port) moved \(total) of \(bytes) bytes")
        }
        return Double(bytes) / seconds / 1_000_000
    }
}
