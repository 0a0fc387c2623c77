/// Capped exponential backoff with full jitter (each delay drawn uniformly from zero to the current ceiling), for
/// reconnecting a session and for asking the server again for a refused remote forward.
///
/// Full jitter rather than "exponential plus a little noise": after a server restart every client of it retries,
/// and spreading the retries over the whole window is what keeps them from arriving together (the AWS
/// architecture blog's comparison of jitter schemes found it the cheapest for the server). The ceiling doubles per
/// failure from `initial` up to `cap`; `reset()` starts again from `initial` (a session that stayed up for a while).
/// Pure logic: the caller may supply the random draw (`unit`, in 0...1), so tests are exact.
public struct Backoff: Sendable, Equatable {
    /// The first ceiling, in seconds: the first retry comes within this.
    public var initial: Double
    /// The largest ceiling, in seconds.
    public var cap: Double
    /// Failures since the last reset.
    public private(set) var failures = 0

    public init(initial: Double = 1, cap: Double = 60) {
        self.initial = max(initial, 0.001)
        self.cap = max(cap, self.initial)
    }

    /// The ceiling for the next delay: `initial` doubled once per failure so far, at most `cap`.
    public var ceiling: Double {
        // 2^failures overflows nothing here: past 64 doublings any sane cap has long been reached.
        let doubled = initial * Double(1 << min(failures, 62))
        return min(cap, doubled)
    }

    /// Whether the ceiling has reached the cap (the point where a failing host gets a reminder log line).
    public var atCap: Bool { ceiling >= cap }

    /// A failure happened: the delay before the next attempt, in seconds, in [0, ceiling]. `unit` is the random
    /// draw, in 0...1.
    public mutating func nextDelay(unit: Double = Double.random(in: 0...1)) -> Double {
        let delay = ceiling * min(max(unit, 0), 1)
        failures += 1
        return delay
    }

    /// A failure that retrying soon will not cure (authentication refused, unknown host key): wait at the cap, with
    /// jitter in its upper half so a fleet of such hosts does not retry in step.
    public mutating func delayAtCap(unit: Double = Double.random(in: 0...1)) -> Double {
        failures += 1
        return cap / 2 + cap / 2 * min(max(unit, 0), 1)
    }

    /// Start again from `initial`.
    public mutating func reset() { failures = 0 }
}
