import Testing
@testable import TunnelEngine

/// The reconnect schedule, with scripted random numbers: no clock, no sleeps.
@Suite("Backoff: capped exponential with full jitter")
struct BackoffTests {
    @Test("the ceiling doubles per failure from 1 s and stops at the cap")
    func ceilingDoublesToCap() {
        var backoff = Backoff(initial: 1, cap: 60)
        var delays: [Double] = []
        for _ in 0..<9 { delays.append(backoff.nextDelay(unit: 1)) }
        #expect(delays.map { $0.rounded() } == [1, 2, 4, 8, 16, 32, 60, 60, 60])
        #expect(backoff.atCap)
    }

    @Test("full jitter: every delay lies in [0, ceiling], the first retry within 1 s")
    func jitterBounds() {
        var backoff = Backoff()
        let first = backoff.nextDelay()
        #expect(first >= 0 && first <= 1)
        for _ in 0..<200 {
            let ceiling = backoff.ceiling
            let delay = backoff.nextDelay()
            #expect(delay >= 0 && delay <= ceiling)
        }
        #expect(backoff.nextDelay(unit: 0) == 0, "full jitter reaches down to zero")
    }

    @Test("reset starts again from the first ceiling")
    func resetRule() {
        var backoff = Backoff(initial: 1, cap: 60)
        for _ in 0..<10 { _ = backoff.nextDelay(unit: 1) }
        backoff.reset()
        #expect(backoff.failures == 0)
        #expect(backoff.nextDelay(unit: 1) == 1)
    }

    @Test("failures that waiting cures are retried at the cap, jittered in its upper half")
    func delayAtCap() {
        var backoff = Backoff(initial: 1, cap: 60)
        #expect(backoff.delayAtCap(unit: 0) == 30)
        #expect(backoff.delayAtCap(unit: 1) == 60)
    }

    @Test("a cap below the initial ceiling is raised to it; a zero initial is clamped")
    func degenerateSettings() {
        let backoff = Backoff(initial: 5, cap: 1)
        #expect(backoff.cap == 5)
        #expect(Backoff(initial: 0, cap: 10).initial > 0)
    }
}
