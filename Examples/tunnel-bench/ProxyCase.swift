// The DynamicForward proxy: a SOCKS5 connect plus the first round trip through `tunnel up` against `ssh -D` on the
// same sshd, and bulk throughput through tunnel's proxy against tunnel's own LocalForward (same process, same
// session), so what the proxy costs on top of a forward shows on its own.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A running proxy with a forward beside it: `tunnel up` with a DynamicForward and a LocalForward to
/// `forwardTarget`, or `ssh -N -D ... -L ...`: one process, one session for both. Stop it with `stop()`.
final class ProxyForwarder {
    enum Kind {
        case tunnel(binary: String)
        case openSSH

        var label: String {
            switch self {
            case .tunnel: return "tunnel up"
            case .openSSH: return "ssh -D"
            }
        }
    }

    let kind: Kind
    let proxyPort: Int
    /// The LocalForward's port.
    let forwardPort: Int
    private let process: RunningProcess

    init(_ kind: Kind, sshd: SSHDFixture, forwardTarget: Int) throws {
        self.kind = kind
        proxyPort = try freeTCPPort()
        forwardPort = try freeTCPPort()
        switch kind {
        case .tunnel(let binary):
            let config = sshd.directory + "/bench-proxy-\(proxyPort).conf"
            let text = """
                Host bench
                    HostName \(sshd.host)
                    Port \(sshd.port)
                    User \(sshd.user)
                    IdentityFile \(sshd.clientKeyPath)
                    UserKnownHostsFile \(sshd.knownHostsPath)
                    DynamicForward \(loopback):\(proxyPort)
                    LocalForward \(loopback):\(forwardPort) \(loopback):\(forwardTarget)

                """
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            process = try ProcessRunner(binary, ["up", "--log-level", "warning", config]).start()
        case .openSSH:
            process = try ProcessRunner("/usr/bin/ssh", sshd.sshOptions()
                + ["-N", "-o", "ExitOnForwardFailure=yes", "-D", "\(loopback):\(proxyPort)",
                   "-L", "\(loopback):\(forwardPort):\(loopback):\(forwardTarget)", sshd.destination]).start()
        }
        let process = self.process
        let ports = [proxyPort, forwardPort]
        do {
            try waitUntil(timeout: Forwarder.startTimeout, "\(kind.label) to listen on \(ports)") {
                !process.isRunning || ports.allSatisfy { TCPTestClient.isAccepting(host: loopback, port: $0) }
            }
            guard process.isRunning else {
                throw BenchError("\(kind.label) exited (\(process.exitStatus!)) before listening\n" + process.outputSummary())
            }
        } catch {
            _ = process.terminate()
            throw error
        }
    }

    /// Stops it; throws if it had already exited, since then the figures are void.
    func stop() throws {
        let alreadyDead = !process.isRunning
        _ = process.terminate()
        if alreadyDead {
            throw BenchError("\(kind.label) exited during the measurement\n" + process.outputSummary())
        }
    }
}

/// The client side of a SOCKS5 CONNECT, as curl does it: greeting, method, request, reply (no pipelining, which
/// `ssh -D` does not take).
enum SOCKS5Client {
    static func connect(_ socket: BlockingSocket, toLoopbackPort port: Int) throws {
        let greeting: [UInt8] = [5, 1, 0]
        try greeting.withUnsafeBytes { try socket.sendAll($0) }
        var method = [UInt8](repeating: 0, count: 2)
        try method.withUnsafeMutableBytes { try socket.receiveExactly($0) }
        guard method == [5, 0] else { throw BenchError("SOCKS5 method choice from \(loopback):\(socket.port): \(method)") }
        let request: [UInt8] = [5, 1, 0, 1, 127, 0, 0, 1, UInt8(port >> 8), UInt8(port & 0xFF)]
        try request.withUnsafeBytes { try socket.sendAll($0) }
        var reply = [UInt8](repeating: 0, count: 10)
        try reply.withUnsafeMutableBytes { try socket.receiveExactly($0) }
        guard reply[0] == 5, reply[1] == 0 else { throw BenchError("SOCKS5 reply from \(loopback):\(socket.port): \(reply)") }
    }
}

struct ProxyCase {
    /// SOCKS5 connects (each with its first round trip) timed per run.
    var connects: Int
    /// MiB per bulk transfer.
    var mebibytes: Int

    func run(_ context: BenchContext) throws {
        try connectLatency(context)
        try throughput(context)
    }

    /// connect to the proxy, SOCKS5 handshake to the echo server, one 64-byte round trip, close: tunnel up against
    /// ssh -D. The same through each one's LocalForward to the echo server (same process, same session) shows what
    /// a new connection costs each without the proxy. (ssh -D answers the CONNECT at once and opens the channel
    /// afterwards, so the client's first bytes travel while the channel opens, as they do through a LocalForward;
    /// tunnel answers once the channel is open, and the client sends only then.)
    private func connectLatency(_ context: BenchContext) throws {
        printNow("\n== proxy connect: \(connects) sequential SOCKS5 connects, each with one \(RoundTrip.size)-byte round trip, then close; the same through a LocalForward")
        // [program][run * 4 + (proxy median, proxy p99, forward median, forward p99)]
        var values: [[Double]] = [[], []]
        for run in 1...context.runs {
            for (index, kind) in [ProxyForwarder.Kind.tunnel(binary: context.tunnelBinary), .openSSH].enumerated() {
                let proxy = try ProxyForwarder(kind, sshd: context.sshd, forwardTarget: context.echo.port)
                let figures: [Double]
                do {
                    figures = try measureConnects(port: proxy.proxyPort, socks5Target: context.echo.port)
                        + measureConnects(port: proxy.forwardPort, socks5Target: nil)
                } catch {
                    try? proxy.stop()
                    throw error
                }
                try proxy.stop()
                values[index] += figures
                printNow("  run \(run)/\(context.runs) \(kind.label): proxy median \(ComparisonTable.format(figures[0])) µs, p99 \(ComparisonTable.format(figures[1])) µs; "
                    + "forward median \(ComparisonTable.format(figures[2])) µs, p99 \(ComparisonTable.format(figures[3])) µs")
            }
        }
        let pick = { (program: Int, figure: Int) in Stats.median(stride(from: figure, to: values[program].count, by: 4).map { values[program][$0] }) }
        let rows = [
            Comparison(caseName: "SOCKS5 connect, tunnel vs ssh -D", metric: "median connect + first round trip", unit: "µs",
                       tunnel: pick(0, 0), openSSH: pick(1, 0), higherIsBetter: false),
            Comparison(caseName: "SOCKS5 connect, tunnel vs ssh -D", metric: "p99 connect + first round trip", unit: "µs",
                       tunnel: pick(0, 1), openSSH: pick(1, 1), higherIsBetter: false),
            Comparison(caseName: "LocalForward connect, tunnel vs ssh -L (same processes)", metric: "median connect + first round trip", unit: "µs",
                       tunnel: pick(0, 2), openSSH: pick(1, 2), higherIsBetter: false),
            Comparison(caseName: "LocalForward connect, tunnel vs ssh -L (same processes)", metric: "p99 connect + first round trip", unit: "µs",
                       tunnel: pick(0, 3), openSSH: pick(1, 3), higherIsBetter: false),
        ]
        context.record(rows)
        ComparisonTable.print(rows, title: "connect + first round trip (median of \(context.runs) run\(context.runs == 1 ? "" : "s"))",
                              columns: ("tunnel up", "ssh -D / -L"))
    }

    private func measureConnects(port: Int, socks5Target: Int?) throws -> [Double] {
        func once() throws {
            let socket = try BlockingSocket.connect(port: port)
            defer { socket.close() }
            if let socks5Target { try SOCKS5Client.connect(socket, toLoopbackPort: socks5Target) }
            var trip = RoundTrip()
            try trip.run(on: socket)
        }
        for _ in 0..<min(10, connects) { try once() }  // warm up: the session is up, caches are warm
        var samples: [UInt64] = []
        samples.reserveCapacity(connects)
        for _ in 0..<connects {
            let start = monotonicNanoseconds()
            try once()
            samples.append(monotonicNanoseconds() - start)
        }
        return Stats.percentiles(ofNanoseconds: &samples, [50, 99]).map { $0 / 1000 }
    }

    /// Bulk download and upload through the SOCKS5 proxy and through a LocalForward of the same tunnel process.
    private func throughput(_ context: BenchContext) throws {
        let bytes = mebibytes << 20
        let server = try BulkServer(bytes: bytes)
        defer { server.stop() }
        printNow("\n== proxy throughput: \(mebibytes) MiB per transfer through tunnel's SOCKS5 proxy and its LocalForward (one process, one session)")
        let proxy = try ProxyForwarder(.tunnel(binary: context.tunnelBinary), sshd: context.sshd, forwardTarget: server.port)
        var proxied: (down: [Double], up: [Double]) = ([], [])
        var forwarded: (down: [Double], up: [Double]) = ([], [])
        do {
            for run in 1...context.runs {
                proxied.down.append(try BulkTransfer.measure(port: proxy.proxyPort, bytes: bytes, download: true, socks5Target: server.port))
                forwarded.down.append(try BulkTransfer.measure(port: proxy.forwardPort, bytes: bytes, download: true))
                proxied.up.append(try BulkTransfer.measure(port: proxy.proxyPort, bytes: bytes, download: false, socks5Target: server.port))
                forwarded.up.append(try BulkTransfer.measure(port: proxy.forwardPort, bytes: bytes, download: false))
                printNow("  run \(run)/\(context.runs): proxy download \(ComparisonTable.format(proxied.down.last!)), upload \(ComparisonTable.format(proxied.up.last!)); "
                    + "LocalForward download \(ComparisonTable.format(forwarded.down.last!)), upload \(ComparisonTable.format(forwarded.up.last!)) MB/s")
            }
        } catch {
            try? proxy.stop()
            throw error
        }
        try proxy.stop()
        let rows = [
            Comparison(caseName: "bulk \(mebibytes) MiB, SOCKS5 proxy vs LocalForward", metric: "download", unit: "MB/s",
                       tunnel: Stats.median(proxied.down), openSSH: Stats.median(forwarded.down), higherIsBetter: true),
            Comparison(caseName: "bulk \(mebibytes) MiB, SOCKS5 proxy vs LocalForward", metric: "upload", unit: "MB/s",
                       tunnel: Stats.median(proxied.up), openSSH: Stats.median(forwarded.up), higherIsBetter: true),
        ]
        context.record(rows)
        ComparisonTable.print(rows, title: "proxy throughput (median of \(context.runs) run\(context.runs == 1 ? "" : "s"))",
                              columns: ("tunnel SOCKS5 proxy", "tunnel LocalForward"))
    }
}
