import Testing
@testable import TunnelEngine

/// The keepalive deadline with a fake clock: no sleeps, no server.
@Suite("Keepalive: probe after silence, give up after ServerAliveCountMax")
struct KeepaliveTests {
    @Test("a silent server: probes at 15, 30, 45 s, dead at 60 s (no reply to 3 keepalives in 45 s)")
    func silentServerIsDeadAfterCountPlusOneIntervals() {
        var keepalive = Keepalive(interval: 15, countMax: 3, now: 0)
        #expect(keepalive.tick(at: 5, due: 5) == .wait(until: 15), "quiet for less than an interval: nothing to do")
        #expect(keepalive.tick(at: 15, due: 15) == .probe(next: 30))
        #expect(keepalive.tick(at: 30, due: 30) == .probe(next: 45))
        #expect(keepalive.tick(at: 45, due: 45) == .probe(next: 60))
        #expect(keepalive.tick(at: 60, due: 60) == .dead(probes: 3, seconds: 45))
    }

    @Test("any byte from the server resets the count and moves the next probe to an interval after it")
    func trafficResets() {
        var keepalive = Keepalive(interval: 15, countMax: 3, now: 0)
        #expect(keepalive.tick(at: 15, due: 15) == .probe(next: 30))
        #expect(keepalive.tick(at: 30, due: 30) == .probe(next: 45))
        keepalive.heard(at: 31)  // the reply, or any data
        #expect(keepalive.probesUnanswered == 0)
        #expect(keepalive.tick(at: 45, due: 45) == .wait(until: 46))
        #expect(keepalive.tick(at: 46, due: 46) == .probe(next: 61))
    }

    @Test("a busy link never probes")
    func busyLinkNeverProbes() {
        var keepalive = Keepalive(interval: 15, countMax: 3, now: 0)
        var now = 0.0
        for _ in 0..<100 {
            now += 5
            keepalive.heard(at: now - 1)
            guard case .wait = keepalive.tick(at: now, due: now) else {
                Issue.record("probed or gave up on a link that delivers every 5 s")
                return
            }
        }
    }

    @Test("ServerAliveCountMax 0: the first interval of silence ends the session, as in OpenSSH")
    func countZero() {
        var keepalive = Keepalive(interval: 10, countMax: 0, now: 0)
        #expect(keepalive.tick(at: 10, due: 10) == .dead(probes: 0, seconds: 10))
    }

    @Test("a tick an hour late (the machine slept): probe at once with a fresh count, not dead")
    func wakeFromSleepProbesAtOnce() {
        var keepalive = Keepalive(interval: 15, countMax: 3, now: 0)
        #expect(keepalive.tick(at: 15, due: 15) == .probe(next: 30))
        #expect(keepalive.tick(at: 30, due: 30) == .probe(next: 45))
        // Asleep from 31 s to an hour later; the timer (due at 35 s) fires after the wake.
        #expect(keepalive.tick(at: 3605, due: 35) == .probe(next: 3620))
        #expect(keepalive.probesUnanswered == 1)
        #expect(keepalive.tick(at: 3620, due: 3620) == .probe(next: 3635))
        #expect(keepalive.tick(at: 3635, due: 3635) == .probe(next: 3650))
        #expect(keepalive.tick(at: 3650, due: 3650) == .dead(probes: 3, seconds: 45), "the deadline runs from the wake")
    }

    @Test("a tick a few seconds late (a busy machine) is not taken for sleep")
    func slightlyLateTickIsNotSleep() {
        var keepalive = Keepalive(interval: 15, countMax: 3, now: 0)
        #expect(keepalive.tick(at: 17, due: 15) == .probe(next: 32))
        #expect(keepalive.tick(at: 33, due: 32) == .probe(next: 48))
        #expect(keepalive.probesUnanswered == 2)
    }
}
