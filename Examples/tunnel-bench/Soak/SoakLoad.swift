// The load every soak phase is made of: worker threads, each opening connections through a LocalForward or the
// SOCKS5 proxy and running checked exchanges on them until a deadline, and the tally of how each ended.
import Foundation
import TunnelTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Counts of outcomes, shared by all workers of a phase.
final class SoakTally: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var connections = 0
    private(set) var verified = 0
    private(set) var bytes = 0
    private(set) var corrupt = 0
    private(set) var closed = 0
    /// Of `closed`: those ended by a plain EOF rather than a reset.
    private(set) var closedByEOF = 0
    private(set) var stuck = 0
    private(set) var connectFailed = 0
    /// The first few failures, said in full, for the report.
    private(set) var examples: [String] = []

    func connected() { lock.withLock { connections += 1 } }

    func record(_ outcome: ExchangeOutcome, route: ExchangeRoute) {
        lock.withLock {
            switch outcome {
            case .verified(let count):
                verified += 1
                bytes += count
                return
            case .corrupt: corrupt += 1
            case .closed(_, _, let reset):
                closed += 1
                if !reset { closedByEOF += 1 }
            case .stuck: stuck += 1
            case .connectFailed: connectFailed += 1
            }
            if examples.count < 5 { examples.append("\(route): \(outcome)") }
        }
    }

    func read<R>(_ body: (SoakTally) -> R) -> R { lock.withLock { body(self) } }

    /// One line: what moved and how everything else ended.
    var summary: String {
        read { t in
            "\(t.connections) connections, \(t.verified) exchanges verified (\(SoakFormat.bytes(t.bytes)) each way), "
                + "corrupt \(t.corrupt), closed early \(t.closed) (\(t.closedByEOF) by EOF), stuck \(t.stuck), connect failed \(t.connectFailed)"
        }
    }
}

enum SoakFormat {
    static func bytes(_ count: Int) -> String {
        if count >= 1 << 30 { return String(format: "%.2f GiB", Double(count) / Double(1 << 30)) }
        if count >= 1 << 20 { return String(format: "%.1f MiB", Double(count) / Double(1 << 20)) }
        return "\(count) B"
    }

    static func kib(_ value: Int?) -> String { value.map { String(format: "%.1f MiB", Double($0) / 1024) } ?? "?" }
}

/// Workers that run checked exchanges until a deadline.
struct SoakLoad {
    /// Concurrent connections (one worker thread each).
    var workers: Int
    var routes: [ExchangeRoute]
    /// Largest payload of one exchange; sizes are spread evenly on a log scale from 1 byte up to it.
    var maxBytes: Int
    /// Exchanges on one connection before it is closed and a new one made: 1 up to this, at random.
    var maxExchangesPerConnection: Int
    var stallLimit: Double
    var seed: UInt64

    /// Runs the workers until `seconds` have passed (each finishes the exchange it is in, bounded by the stall
    /// limit), calling `tick` about every second on the calling thread with the elapsed seconds.
    func run(seconds: Double, tally: SoakTally, tick: (Double) -> Void = { _ in }) {
        let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
        let done = DispatchGroup()
        for index in 0..<workers {
            done.enter()
            let route = routes[index % routes.count]
            let worker = self
            startThread("soak \(index)") {
                defer { done.leave() }
                worker.work(index: index, route: route, until: deadline, tally: tally)
            }
        }
        let started = monotonicNanoseconds()
        while done.wait(timeout: .now() + 1) == .timedOut {
            tick(Double(monotonicNanoseconds() - started) / 1e9)
        }
    }

    private func work(index: Int, route: ExchangeRoute, until deadline: UInt64, tally: SoakTally) {
        var random = SplitMix64(seed: seed &+ UInt64(index) &* 7919)
        let payload = Payload(size: maxBytes, seed: random.next())
        while monotonicNanoseconds() < deadline {
            let socket: BlockingSocket
            do {
                socket = try route.connect(timeout: stallLimit)
            } catch {
                tally.record(.connectFailed("\(error)"), route: route)
                Thread.sleep(forTimeInterval: 0.05)   // while a fault lasts, do not spin on refused connects
                continue
            }
            tally.connected()
            let exchanges = Int.random(in: 1...maxExchangesPerConnection, using: &random)
            for _ in 0..<exchanges {
                let count = Self.logUniformSize(upTo: maxBytes, using: &random)
                let offset = Int.random(in: 0...(maxBytes - count), using: &random)
                let outcome = Exchange.run(on: socket, payload: payload, offset: offset, count: count, stallLimit: stallLimit)
                tally.record(outcome, route: route)
                guard case .verified = outcome else { break }
                if monotonicNanoseconds() >= deadline { break }
            }
            socket.close()
        }
    }

    /// 1 ... `limit` bytes, each power of two about as likely as the next: many small exchanges, some large.
    static func logUniformSize(upTo limit: Int, using random: inout SplitMix64) -> Int {
        let bits = Double.random(in: 0...log2(Double(limit)), using: &random)
        return max(1, min(limit, Int(pow(2, bits))))
    }
}
