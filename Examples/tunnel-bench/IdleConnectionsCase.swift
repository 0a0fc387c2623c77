// Does the forwarder's work follow activity or the number of open connections? CPU time of the forwarding
// process for the same sequential round trips on one connection, first alone, then with many idle forwarded
// connections open beside it.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

struct IdleConnectionsCase {
    var idle: Int
    var roundTrips: Int

    var metrics: [Metric] {
        [Metric(name: "CPU for \(roundTrips) round trips, 0 idle", unit: "ms", higherIsBetter: false),
         Metric(name: "CPU for \(roundTrips) round trips, \(idle) idle", unit: "ms", higherIsBetter: false),
         Metric(name: "CPU per round trip, 0 idle", unit: "µs", higherIsBetter: false),
         Metric(name: "CPU per round trip, \(idle) idle", unit: "µs", higherIsBetter: false),
         Metric(name: "growth, \(idle) idle / 0 idle", unit: "x", higherIsBetter: false),
         Metric(name: "RSS, 0 idle", unit: "MiB", higherIsBetter: false),
         Metric(name: "RSS, \(idle) idle", unit: "MiB", higherIsBetter: false),
         // Anonymous memory is what the program allocated; the rest of RSS is code mapped from files (README
         // "Start-up and idle memory").
         Metric(name: "anonymous RSS, 0 idle", unit: "MiB", higherIsBetter: false)]
    }

    /// Open files the bench needs: both ends of every idle connection live in this process, plus slack.
    var filesNeeded: Int { 2 * idle + 512 }

    func run(_ context: BenchContext) throws {
        printNow("\n== idle connections: forwarder CPU (utime+stime) for \(roundTrips) sequential \(RoundTrip.size)-byte round trips, "
            + "with 0 and with \(idle) idle forwarded connections open")
        try context.compare(caseName: "CPU with idle connections", metrics: metrics) { forwarder in
            try measure(forwarder, echo: context.echo)
        }
    }

    func measure(_ forwarder: Forwarder, echo: EchoServer) throws -> [Double] {
        let active = try BlockingSocket.connect(port: forwarder.localPort)
        defer { active.close() }
        var trip = RoundTrip()
        for _ in 0..<200 { try trip.run(on: active) }   // warm up
        let alone = try cpuForRoundTrips(forwarder, active, &trip)
        let rssAlone = Double(ProcessStats.rssKiB(forwarder.pid) ?? 0) / 1024
        let anonymousAlone = Double(ProcessStats.anonymousRSSKiB(forwarder.pid) ?? 0) / 1024

        // Open the idle connections, each fully established (one round trip), and leave them open.
        let acceptedBefore = echo.connectionsAccepted
        var idleSockets: [BlockingSocket] = []
        defer { idleSockets.forEach { $0.close() } }
        let deadline = Date().addingTimeInterval(Double(idle) * 0.1 + 60)
        for index in 0..<idle {
            guard Date() < deadline else {
                throw BenchError("opened only \(index) of \(idle) idle connections through \(forwarder.kind.label) before the deadline")
            }
            let socket: BlockingSocket
            do {
                socket = try BlockingSocket.connect(port: forwarder.localPort)
                idleSockets.append(socket)
                var idleTrip = RoundTrip()
                try idleTrip.run(on: socket)
            } catch {
                throw BenchError("idle connection \(index + 1) of \(idle) through \(forwarder.kind.label): \(error)")
            }
        }
        let reached = echo.connectionsAccepted - acceptedBefore
        guard reached >= idle else { throw BenchError("only \(reached) of \(idle) idle connections reached the echo server") }
        Thread.sleep(forTimeInterval: 0.5)   // let the opening work settle before the clock starts

        let crowded = try cpuForRoundTrips(forwarder, active, &trip)
        let rssCrowded = Double(ProcessStats.rssKiB(forwarder.pid) ?? 0) / 1024
        let perTrip = { (milliseconds: Double) in milliseconds * 1000 / Double(roundTrips) }
        return [alone, crowded, perTrip(alone), perTrip(crowded), alone > 0 ? crowded / alone : .nan, rssAlone, rssCrowded,
                anonymousAlone]
    }

    /// CPU milliseconds the forwarder spends on `roundTrips` sequential round trips.
    private func cpuForRoundTrips(_ forwarder: Forwarder, _ socket: BlockingSocket, _ trip: inout RoundTrip) throws -> Double {
        let before = try forwarder.cpuMilliseconds()
        for _ in 0..<roundTrips { try trip.run(on: socket) }
        let after = try forwarder.cpuMilliseconds()
        return after - before
    }
}
