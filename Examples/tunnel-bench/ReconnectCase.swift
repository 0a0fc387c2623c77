// How `tunnel up` lives through outages: time from sshd accepting again to the first forwarded connection served,
// how fast a frozen server is found (against `ssh -L` with the same ServerAlive settings), CPU used while the
// server is gone, and descriptors and memory after many kill/restart cycles. The case has its own sshd, since it
// kills it.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

struct ReconnectCase {
    var cycles: Int
    var leakCycles: Int
    var outageSeconds: Double
    var interval: Int
    var countMax: Int

    static func smoke() -> ReconnectCase {
        ReconnectCase(cycles: 2, leakCycles: 3, outageSeconds: 1, interval: 1, countMax: 1)
    }

    func run(_ context: BenchContext) throws {
        printNow("\n== reconnect: \(cycles) sshd kill/restart cycles timed, \(leakCycles) in all for descriptors and memory, "
            + "a \(formatted(outageSeconds)) s outage, a frozen server with ServerAliveInterval \(interval), ServerAliveCountMax \(countMax)")
        var options = SSHDFixture.Options()
        options.logLevel = "ERROR"
        let sshd = try SSHDFixture(options: options)
        defer { sshd.stop() }
        try measureCycles(context, sshd)
        try measureDetection(context, sshd)
    }

    /// Kill/restart cycles and an outage, with one `tunnel up` throughout.
    private func measureCycles(_ context: BenchContext, _ sshd: SSHDFixture) throws {
        let forwarder = try Forwarder(context.tunnel, sshd: sshd, targetPort: context.echo.port)
        defer { try? forwarder.stop() }
        try roundTrip(forwarder.localPort, within: 20)
        var times: [Double] = []
        var first: (fds: Int, rss: Int)?
        for cycle in 1...max(cycles, leakCycles) {
            sshd.crash()
            try sshd.start()
            let accepting = monotonicNanoseconds()
            try roundTrip(forwarder.localPort, within: 30)
            if cycle <= cycles { times.append(Double(monotonicNanoseconds() - accepting) / 1e6) }
            // After the second cycle: the first one makes what is made once, lazily (the resolver's thread).
            if cycle == 2 { first = (ProcessStats.openDescriptors(forwarder.pid) ?? -1, ProcessStats.rssKiB(forwarder.pid) ?? -1) }
        }
        let last = (ProcessStats.openDescriptors(forwarder.pid) ?? -1, ProcessStats.rssKiB(forwarder.pid) ?? -1)
        printNow("  sshd accepting again -> first forwarded round trip: median \(formatted(Stats.median(times))) ms, "
            + "max \(formatted(times.max() ?? 0)) ms over \(times.count) cycles")
        if let first {
            printNow("  after cycle 2: \(first.fds) fds, \(first.rss) KiB RSS; after cycle \(max(cycles, leakCycles)): \(last.0) fds, \(last.1) KiB RSS")
        }

        sshd.stop()
        Thread.sleep(forTimeInterval: 0.2)   // the loss itself is not part of the outage's cost
        let cpuBefore = try ProcessStats.cpuMilliseconds(forwarder.pid)
        Thread.sleep(forTimeInterval: outageSeconds)   // the outage is what is measured
        let cpu = try ProcessStats.cpuMilliseconds(forwarder.pid) - cpuBefore
        try sshd.start()
        try roundTrip(forwarder.localPort, within: 30)
        printNow("  CPU used during a \(formatted(outageSeconds)) s outage: \(formatted(cpu)) ms")
    }

    /// A frozen server: seconds until `tunnel up` says the connection is lost, and until `ssh -L` with the same
    /// ServerAlive settings exits.
    private func measureDetection(_ context: BenchContext, _ sshd: SSHDFixture) throws {
        let settings = ["ServerAliveInterval \(interval)", "ServerAliveCountMax \(countMax)"]
        let tunnel = try Forwarder(context.tunnel, sshd: sshd, targetPort: context.echo.port, extraConfig: settings)
        defer { try? tunnel.stop() }
        let ssh = try Forwarder(.openSSH(label: "ssh -L", options: settings.flatMap { ["-o", $0.replacingOccurrences(of: " ", with: "=")] }),
                                sshd: sshd, targetPort: context.echo.port)
        defer { _ = ssh.running.terminate() }
        try roundTrip(tunnel.localPort, within: 20)
        try roundTrip(ssh.localPort, within: 20)
        sshd.suspend()
        defer { sshd.resume() }
        let frozen = monotonicNanoseconds()
        let bound = Double(interval * (countMax + 1)) + 10
        var tunnelSeconds: Double?
        var sshSeconds: Double?
        try waitUntil(timeout: bound, "tunnel and ssh -L to notice the frozen server") {
            let now = Double(monotonicNanoseconds() - frozen) / 1e9
            if tunnelSeconds == nil, tunnel.running.stderr.contains("connection lost") { tunnelSeconds = now }
            if sshSeconds == nil, !ssh.running.isRunning { sshSeconds = now }
            return tunnelSeconds != nil && sshSeconds != nil
        }
        printNow("  frozen server found after: tunnel up \(formatted(tunnelSeconds!)) s, ssh -L \(formatted(sshSeconds!)) s "
            + "(interval x (count + 1) = \(interval * (countMax + 1)) s)")
    }

    /// One round trip through `port`, retried until `within` seconds have passed (a client that arrives while the
    /// session is down waits for it, or is closed after ConnectTimeout).
    private func roundTrip(_ port: Int, within seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        var lastError: Error?
        while Date() < deadline {
            do {
                let socket = try BlockingSocket.connect(port: port, timeout: max(1, deadline.timeIntervalSinceNow))
                defer { socket.close() }
                var trip = RoundTrip()
                try trip.run(on: socket)
                return
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        throw BenchError("no round trip through \(loopback):\(port) within \(formatted(seconds)) s: \(lastError.map { "\($0)" } ?? "")")
    }

    private func formatted(_ value: Double) -> String { ComparisonTable.format(value) }
}
