// Start-up: from starting the forwarding program to the first byte forwarded, `tunnel up` against `ssh -N -L`.
import Foundation
import TunnelTestSupport

struct StartupCase {
    func run(_ context: BenchContext) throws {
        printNow("\n== start-up: from starting the program to the first \(RoundTrip.size)-byte round trip through its forward, \(context.runs) runs")
        var times: [[Double]] = [[], []]
        for run in 1...context.runs {
            for (index, kind) in [context.tunnel, ForwarderKind.defaultOpenSSH].enumerated() {
                let start = monotonicNanoseconds()
                // The forwarder is started and waited for (it listens), then one round trip proves the whole path:
                // a client tunnel accepts before its session is up waits for it.
                let forwarder = try Forwarder(kind, sshd: context.sshd, targetPort: context.echo.port)
                defer { try? forwarder.stop() }
                let socket = try BlockingSocket.connect(port: forwarder.localPort, timeout: 30)
                defer { socket.close() }
                var trip = RoundTrip()
                try trip.run(on: socket)
                let milliseconds = Double(monotonicNanoseconds() - start) / 1e6
                times[index].append(milliseconds)
                printNow("  run \(run)/\(context.runs) \(kind.label): \(ComparisonTable.format(milliseconds)) ms")
            }
        }
        let rows = [Comparison(caseName: "start-up to the first forwarded byte", metric: "time", unit: "ms",
                               tunnel: Stats.median(times[0]), openSSH: Stats.median(times[1]), higherIsBetter: false)]
        context.record(rows)
        ComparisonTable.print(rows, title: "start-up (median of \(context.runs) run\(context.runs == 1 ? "" : "s"))")
    }
}
