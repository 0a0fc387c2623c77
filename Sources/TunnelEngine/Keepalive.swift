#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// When to probe the server and when to give the session up (`ServerAliveInterval`, `ServerAliveCountMax`).
///
/// Any byte from the server proves the link alive, so silence is measured from the last one; libssh2 does not count
/// keepalive replies, the transport does. After `interval` of silence a probe goes out, then one more per
/// interval; when `countMax` probes have gone unanswered and another interval passes in silence, the session is
/// dead (OpenSSH's rule: interval 15, count 3 finds a dead link 60 s after the last byte, 45 s after the first
/// probe). A tick that comes much later than it was due means the machine slept: the server is probed at once,
/// with a fresh count, instead of being declared dead for a silence that was our own (or waiting another interval
/// to learn that the NAT entry is gone).
///
/// Pure logic: the caller supplies the clock (seconds on a clock that counts sleep, see `KeepaliveClock`).
struct Keepalive: Equatable {
    /// Seconds of silence before a probe; one probe per interval after that.
    let interval: Double
    /// Unanswered probes after which (and one more interval) the session is dead.
    let countMax: Int
    /// A tick this much later than due means the machine was asleep.
    static let lateness = 10.0

    private(set) var lastHeard: Double
    private(set) var probesUnanswered = 0
    /// When the first of the unanswered probes went out.
    private(set) var firstProbeAt: Double?

    enum Action: Equatable {
        /// Nothing to do; tick again at this time.
        case wait(until: Double)
        /// Send a probe; tick again at this time.
        case probe(next: Double)
        /// No reply to `probes` probes in `seconds`: the session is dead.
        case dead(probes: Int, seconds: Double)
    }

    init(interval: Double, countMax: Int, now: Double) {
        self.interval = interval
        self.countMax = max(countMax, 0)
        self.lastHeard = now
    }

    /// Something arrived from the server.
    mutating func heard(at now: Double) {
        lastHeard = now
        probesUnanswered = 0
        firstProbeAt = nil
    }

    /// The timer fired at `now`; it was due at `due`.
    mutating func tick(at now: Double, due: Double) -> Action {
        if now - due > Self.lateness {
            // Woken from sleep: the silence was ours. Probe at once and count afresh.
            probesUnanswered = 1
            firstProbeAt = now
            return .probe(next: now + interval)
        }
        if probesUnanswered == 0 {
            let quietUntil = lastHeard + interval
            if now < quietUntil { return .wait(until: quietUntil) }
        }
        if probesUnanswered >= countMax {
            return .dead(probes: probesUnanswered, seconds: now - (firstProbeAt ?? lastHeard))
        }
        probesUnanswered += 1
        if firstProbeAt == nil { firstProbeAt = now }
        return .probe(next: now + interval)
    }
}

/// Seconds on a clock that keeps counting while the machine sleeps (Linux `CLOCK_BOOTTIME`; on Darwin
/// `CLOCK_MONOTONIC`, which counts sleep there), so `Keepalive` can tell a late timer from a silent server.
/// NIO's timers run on a clock that stops during sleep, which is why they are not enough on their own.
enum KeepaliveClock {
    static func now() -> Double {
        var spec = timespec()
        #if os(Linux)
        clock_gettime(CLOCK_BOOTTIME, &spec)
        #else
        clock_gettime(CLOCK_MONOTONIC, &spec)
        #endif
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
