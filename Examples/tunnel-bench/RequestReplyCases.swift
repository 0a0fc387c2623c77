// Small request/reply traffic through one forward: many concurrent clients, one client's latency, and how fast
// new connections are made. All against the echo server, so one 64-byte request gets one 64-byte reply.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// N clients, each on its own connection and thread, doing round trips back to back for a fixed time.
struct ManyClientsCase {
    var clients: Int
    var seconds: Double

    static let metrics = [Metric(name: "requests/s", unit: "1/s", higherIsBetter: true),
                          Metric(name: "median round trip", unit: "µs", higherIsBetter: false),
                          Metric(name: "p99 round trip", unit: "µs", higherIsBetter: false),
                          Metric(name: "forwarder CPU per request", unit: "µs", higherIsBetter: false)]

    func run(_ context: BenchContext) throws {
        printNow("\n== many clients: \(clients) concurrent clients, \(RoundTrip.size)-byte request/reply, \(formatted(seconds)) s each")
        try context.compare(caseName: "\(clients) clients, 64 B request/reply", metrics: Self.metrics) { forwarder in
            try measure(forwarder)
        }
    }

    /// requests/s, median and p99 latency in µs, and the forwarder's CPU µs per request (which depends less on
    /// what else the machine is doing than the rate does).
    func measure(_ forwarder: Forwarder) throws -> [Double] {
        let port = forwarder.localPort
        // Connect everyone first (each with one round trip, so the channel is open) and only then start the clock.
        var sockets: [BlockingSocket] = []
        defer { sockets.forEach { $0.close() } }
        for _ in 0..<clients {
            let socket = try BlockingSocket.connect(port: port)
            sockets.append(socket)
            var trip = RoundTrip()
            try trip.run(on: socket)
        }
        let results = ClientResults()
        let gate = Gate()
        let seconds = self.seconds
        // A client stops at the deadline or after this many round trips, whichever comes first.
        let maxRoundTrips = 10_000_000
        for socket in sockets {
            startThread("client \(socket.fd)") {
                var samples: [UInt64] = []
                samples.reserveCapacity(65536)
                var failure: Error?
                var trip = RoundTrip()
                gate.waitOpen()
                let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
                do {
                    while samples.count < maxRoundTrips {
                        let start = monotonicNanoseconds()
                        if start >= deadline { break }
                        try trip.run(on: socket)
                        samples.append(monotonicNanoseconds() - start)
                    }
                } catch {
                    failure = error
                }
                results.add(samples, failure)
            }
        }
        let cpuBefore = try forwarder.cpuMilliseconds()
        let start = monotonicNanoseconds()
        gate.open()
        try results.wait(for: clients, timeout: seconds + 30)
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let cpu = try forwarder.cpuMilliseconds() - cpuBefore
        var samples = try results.samples()
        guard !samples.isEmpty else { throw BenchError("no round trip completed through port \(port)") }
        let requestsPerSecond = Double(samples.count) / elapsed
        let latency = Stats.percentiles(ofNanoseconds: &samples, [50, 99]).map { $0 / 1000 }
        return [requestsPerSecond, latency[0], latency[1], cpu * 1000 / Double(samples.count)]
    }
}

/// One client, one connection, round trips back to back: the latency the forwarder adds when nothing else runs.
struct OneClientLatencyCase {
    var roundTrips: Int

    static let metrics = [Metric(name: "median round trip", unit: "µs", higherIsBetter: false),
                          Metric(name: "p99 round trip", unit: "µs", higherIsBetter: false)]

    func run(_ context: BenchContext) throws {
        printNow("\n== one client latency: \(roundTrips) round trips of \(RoundTrip.size) bytes on one connection")
        try context.compare(caseName: "1 client, 64 B round trip", metrics: Self.metrics) { forwarder in
            let socket = try BlockingSocket.connect(port: forwarder.localPort)
            defer { socket.close() }
            var trip = RoundTrip()
            for _ in 0..<min(200, roundTrips) { try trip.run(on: socket) }   // warm up: session, caches, TCP
            var samples: [UInt64] = []
            samples.reserveCapacity(roundTrips)
            for _ in 0..<roundTrips {
                let start = monotonicNanoseconds()
                try trip.run(on: socket)
                samples.append(monotonicNanoseconds() - start)
            }
            return Stats.percentiles(ofNanoseconds: &samples, [50, 99]).map { $0 / 1000 }
        }
    }
}

/// New connections one after another: connect, one 64-byte round trip, close. Measures what opening and closing
/// an SSH channel costs each forwarder.
struct ConnectionRateCase {
    var seconds: Double

    static let metrics = [Metric(name: "connections/s", unit: "1/s", higherIsBetter: true),
                          Metric(name: "forwarder CPU per connection", unit: "µs", higherIsBetter: false)]

    func run(_ context: BenchContext) throws {
        printNow("\n== connection rate: sequential connect, \(RoundTrip.size)-byte round trip, close; \(formatted(seconds)) s each")
        try context.compare(caseName: "new connections, sequential", metrics: Self.metrics) { forwarder in
            try measure(forwarder)
        }
    }

    /// connections/s and the forwarder's CPU µs per connection.
    func measure(_ forwarder: Forwarder) throws -> [Double] {
        let port = forwarder.localPort
        func once() throws {
            let socket = try BlockingSocket.connect(port: port)
            defer { socket.close() }
            var trip = RoundTrip()
            try trip.run(on: socket)
        }
        for _ in 0..<10 { try once() }   // warm up
        let maxConnections = 1_000_000
        let cpuBefore = try forwarder.cpuMilliseconds()
        let start = monotonicNanoseconds()
        let deadline = start + UInt64(seconds * 1e9)
        var count = 0
        while count < maxConnections && monotonicNanoseconds() < deadline {
            try once()
            count += 1
        }
        let elapsed = Double(monotonicNanoseconds() - start) / 1e9
        let cpu = try forwarder.cpuMilliseconds() - cpuBefore
        guard count > 0 else { throw BenchError("no connection completed through port \(port)") }
        return [Double(count) / elapsed, cpu * 1000 / Double(count)]
    }
}

/// Lets threads that were started one by one begin at the same moment.
final class Gate: @unchecked Sendable {
    private let condition = NSCondition()
    private var isOpen = false

    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `open()`; gives up after 60 s (the opener is this process, so that means a bug).
    func waitOpen() {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(60)
        while !isOpen && condition.wait(until: deadline) {}
    }
}

/// Latency samples and failures handed back by client threads.
final class ClientResults: @unchecked Sendable {
    private let condition = NSCondition()
    private var collected: [UInt64] = []
    private var failures: [String] = []
    private var finished = 0

    func add(_ samples: [UInt64], _ failure: Error?) {
        condition.lock()
        collected += samples
        if let failure { failures.append("\(failure)") }
        finished += 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `count` clients have reported; throws after `timeout` seconds saying how many had.
    func wait(for count: Int, timeout: Double) throws {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while finished < count {
            if !condition.wait(until: deadline) && finished < count {
                throw BenchError("only \(finished) of \(count) clients finished within \(formatted(timeout)) s")
            }
        }
    }

    /// Every sample, or the first failure (and how many clients failed).
    func samples() throws -> [UInt64] {
        condition.lock()
        defer { condition.unlock() }
        if let first = failures.first {
            throw BenchError("\(failures.count) client(s) failed, first: \(first)")
        }
        return collected
    }
}

func formatted(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.2f", seconds)
}
