import NIOCore
import Testing
@testable import TunnelEngine

/// The receive-window rules (README "Receive windows"), without sockets or SSH.
@Suite("ReceiveWindow: grow while the client keeps up and growing pays, within the cap and the budget")
struct ReceiveWindowTests {
    static let mib = 1 << 20

    /// A moment `milliseconds` into a made-up clock.
    static func at(_ milliseconds: Int) -> NIODeadline { .uptimeNanoseconds(UInt64(1_000 + milliseconds) * 1_000_000) }

    /// A stream over a 100 ms round trip that only the window limits: every step delivers a whole window 100 ms after
    /// the last, so a doubled window doubles the rate.
    struct LongLink {
        var clock = 0

        /// One round trip's worth, kept up with.
        @discardableResult
        mutating func step(_ window: inout ReceiveWindow) -> Bool {
            clock += 100
            return window.clientKeptUp(delivered: window.target, at: ReceiveWindowTests.at(clock))?.grew ?? false
        }

        /// Steps until the window grows (true), or gives up after `limit` steps (false: the cap or the budget).
        @discardableResult
        mutating func growOnce(_ window: inout ReceiveWindow, limit: Int = 400) -> Bool {
            for _ in 0..<limit where step(&window) { return true }
            return false
        }

        /// Grows the window to `size` (which it must reach).
        mutating func grow(_ window: inout ReceiveWindow, to size: Int) {
            while window.target < size {
                guard growOnce(&window) else {
                    Issue.record("the window stopped at \(window.target >> 20) MiB on its way to \(size >> 20) MiB")
                    return
                }
            }
        }
    }

    @Test("a new window is the base, and at the base libssh2's own top-up is left to work alone")
    func startsAtBase() {
        let window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 256 * Self.mib), proof: 0)
        #expect(window.target == 2 * Self.mib)
        #expect(window.claimed == 0)
        #expect(window.grant(windowLeft: 0) == nil, "at the base libssh2 grants by itself; a grant of ours would double it")
    }

    @Test("the first try waits for proof that the client reads: more than socket buffers hide")
    func proofBeforeTheFirstGrowth() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: Self.mib, cap: 64 * Self.mib, budget: budget, proof: 8 * Self.mib)
        var link = LongLink()
        for _ in 0..<7 { link.step(&window) }
        #expect(window.target == Self.mib, "7 MiB into the kernel's buffers prove nothing")
        link.step(&window)
        #expect(window.target == 2 * Self.mib)
        link.grow(&window, to: 4 * Self.mib)
        let grown = window.target
        window.clientFellBehind(at: Self.at(link.clock))
        window.clientFellBehind(at: Self.at(link.clock + 600))
        #expect(window.target == grown / 2)
        link.clock += 600
        link.growOnce(&window)
        #expect(window.target >= grown, "a client that proved it reads stays proven; only its window shrank")
    }

    @Test("a client that never keeps up never gets more than the base")
    func slowFromTheStart() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 8 * Self.mib)
        // What the kernel's socket buffers take from a client that reads nothing looks like keeping up...
        for step in 0..<4 { window.clientKeptUp(delivered: Self.mib, at: Self.at(step)) }
        // ...then it is behind for good.
        for step in 0..<100 { window.clientFellBehind(at: Self.at(step * 100)) }
        #expect(window.target == 2 * Self.mib)
        #expect(budget.inUse == 0)
    }

    @Test("over a long link each doubling doubles the rate: the window doubles, then leaps 4x, to the cap and no further")
    func growsToTheCap() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 16 * Self.mib, budget: budget, proof: 0)
        var link = LongLink()
        let grew1 = link.step(&window)
        #expect(!grew1, "one step is no measurement yet")
        var sizes = [window.target / Self.mib]
        for _ in 0..<40 {
            link.step(&window)
            sizes.append(window.target / Self.mib)
        }
        #expect(Array(Set(sizes)).sorted() == [2, 4, 16], "a doubling that doubled the rate: then 4x at a time")
        #expect(sizes.last == 16)
        #expect(sizes.allSatisfy { $0 <= 16 }, "no connection over the cap")
        #expect(budget.inUse == 14 * Self.mib, "what is held beyond the base is claimed from the budget")
        let grew2 = link.growOnce(&window, limit: 50)
        #expect(!grew2)
    }

    @Test("where the window is not the limit (a fast link, a busy CPU), a doubled window goes back and rests, longer each time")
    func growingThatDoesNotPayGoesBack() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        // The same 8 MiB every 100 ms, whatever the window (two windows of 4 MiB: a measurement per step).
        var clock = 0
        func step() -> Bool {
            clock += 100
            return window.clientKeptUp(delivered: 8 * Self.mib, at: Self.at(clock))?.grew ?? false
        }
        let grew3 = step()
        #expect(!grew3, "the measurement starts")
        let grew4 = step()
        #expect(grew4, "a measured rate: the first try")
        #expect(window.target == 4 * Self.mib)
        let grew5 = step()
        #expect(!grew5, "what the old window still brings")
        let grew6 = step()
        #expect(!grew6, "the rate did not rise")
        #expect(window.target == 2 * Self.mib, "back to the window that moved as much")
        #expect(window.growth == .resting(until: Self.at(clock + 1000)))
        #expect(budget.inUse == 2 * Self.mib, "the bytes granted for the try may still be on their way")
        window.windowIs(left: Self.mib)
        #expect(budget.inUse == 0, "read down below the window: given back")
        // Resting, then measuring again, then another try that does not pay: twice the rest.
        var tried = clock
        while window.target == 2 * Self.mib { _ = step() }
        #expect(clock - tried >= 1000, "no try while resting")
        while window.target == 4 * Self.mib { _ = step() }
        #expect(window.growth == .resting(until: Self.at(clock + 2000)))
        tried = clock
        while window.target == 2 * Self.mib { _ = step() }
        #expect(clock - tried >= 2000)
    }

    /// A 2 MiB window whose first try (to 4 MiB, against 4 MiB per 100 ms) has begun and whose old window's worth
    /// has arrived, at 200 ms: the next bytes measure the try.
    static func windowTryingFourMiB() -> ReceiveWindow {
        var window = ReceiveWindow(base: 2 * mib, cap: 64 * mib, budget: WindowBudget(total: 256 * mib), proof: 0)
        _ = window.clientKeptUp(delivered: 0, at: at(0))
        _ = window.clientKeptUp(delivered: 4 * mib, at: at(100))
        #expect(window.target == 4 * mib)
        _ = window.clientKeptUp(delivered: 2 * mib, at: at(200))
        return window
    }

    @Test("a rate that rises by less than the threshold is noise: the window goes back; by more it stays")
    func threshold() {
        for (gain, kept) in [(1.2, false), (1.6, true)] {
            var window = Self.windowTryingFourMiB()
            // Two windows (8 MiB) in 200 ms / gain: the rate is `gain` times the 4 MiB per 100 ms before.
            let milliseconds = Int((200 / gain).rounded())
            _ = window.clientKeptUp(delivered: 8 * Self.mib, at: Self.at(200 + milliseconds))
            #expect((window.target > 2 * Self.mib) == kept, "a rate \(gain)x as high")
        }
    }

    @Test("a try that pays by less than the window grew (another limit is near) is followed by a doubling, not a leap")
    func leapsOnlyWhileTheWindowAloneLimits() {
        var window = Self.windowTryingFourMiB()
        // 1.5x the rate (8 MiB in 133 ms against 4 MiB in 100): it paid, but less than 1.7x.
        let change = window.clientKeptUp(delivered: 8 * Self.mib, at: Self.at(333))
        #expect(change == .tried(from: 4 * Self.mib, to: 8 * Self.mib, rateBefore: Double(8 * Self.mib) / 0.133))
    }

    @Test("a try that slows the stream is given up after as long as two old windows took, not two of the bigger window")
    func aTryThatSlowsEndsEarly() {
        var window = Self.windowTryingFourMiB()
        // The bigger window moves half as much: 4 MiB (two old windows) in 200 ms.
        let change = window.clientKeptUp(delivered: 4 * Self.mib, at: Self.at(400))
        #expect(change == .wentBack(tried: 4 * Self.mib, to: 2 * Self.mib, rate: Double(4 * Self.mib) / 0.2,
                                    rateBefore: Double(4 * Self.mib) / 0.1))
    }

    @Test("a rate is measured over at least two windows and 20 ms, never over a few fast reads")
    func shortMeasurements() {
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 256 * Self.mib), proof: 0)
        _ = window.clientKeptUp(delivered: 0, at: Self.at(0))
        // Two windows in 5 ms (loopback): not long enough to say anything.
        let grew7 = window.clientKeptUp(delivered: 4 * Self.mib, at: Self.at(5))?.grew ?? false
        #expect(!grew7)
        let grew8 = window.clientKeptUp(delivered: Self.mib, at: Self.at(10))?.grew ?? false
        #expect(!grew8)
        let grew9 = window.clientKeptUp(delivered: 4 * Self.mib, at: Self.at(20))?.grew ?? false
        #expect(grew9)
    }

    @Test("grants refill to the target once a quarter is used")
    func grants() {
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 8 * Self.mib, budget: WindowBudget(total: 256 * Self.mib), proof: 0)
        var link = LongLink()
        link.grow(&window, to: 8 * Self.mib)
        #expect(window.target == 8 * Self.mib)
        #expect(window.grant(windowLeft: 7 * Self.mib) == nil, "less than a quarter used: nothing yet")
        #expect(window.grant(windowLeft: 5 * Self.mib) == 3 * Self.mib)
        #expect(window.grant(windowLeft: 0) == 8 * Self.mib)
        // Refilling at three quarters keeps the window above libssh2's own top-up point, so the two never both grant.
        #expect(window.target / 4 * 3 > window.libssh2AdjustsBelow(readSize: 64 * 1024))
    }

    @Test("a client behind for longer than the patience halves its window, not below the base, and gives the rest back as it drains")
    func fallsBehind() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var link = LongLink()
        link.grow(&window, to: 16 * Self.mib)
        #expect(budget.inUse == 14 * Self.mib)
        window.clientFellBehind(at: Self.at(0))
        window.clientFellBehind(at: Self.at(400))
        #expect(window.target == 16 * Self.mib, "briefly late: the window stays")
        window.clientFellBehind(at: Self.at(500))
        #expect(window.target == 8 * Self.mib)
        // The window had been read down to 5 MiB before the client fell behind: the connection holds at most that.
        window.windowIs(left: 5 * Self.mib)
        #expect(budget.inUse == 6 * Self.mib)
        window.clientFellBehind(at: Self.at(900))
        #expect(window.target == 8 * Self.mib, "at most once per patience")
        for step in 2..<10 { window.clientFellBehind(at: Self.at(step * 500)) }
        #expect(window.target == 2 * Self.mib)
        window.windowIs(left: 0)
        #expect(budget.inUse == 0)
    }

    @Test("a stalled client's halving gives the budget nothing back until the bytes libssh2 queued for it are read")
    func stalledClientKeepsItsClaimUntilRead() {
        // Exactly one connection's growth to the cap.
        let budget = WindowBudget(total: 62 * Self.mib)
        var stalled = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var link = LongLink()
        link.grow(&stalled, to: 64 * Self.mib)
        #expect(budget.inUse == 62 * Self.mib)
        // The server filled the whole 64 MiB window; the client stopped reading, so all of it sits unread in
        // libssh2's queue, still counted in the channel's window.
        for step in 0..<3 {
            stalled.clientFellBehind(at: Self.at(step * 500))
            stalled.windowIs(left: 64 * Self.mib)
        }
        #expect(stalled.target == 16 * Self.mib, "halved twice")
        #expect(budget.inUse == 62 * Self.mib, "nothing read: the connection may still hold its old window")
        #expect(stalled.grant(windowLeft: 64 * Self.mib) == nil, "and it is granted nothing more")
        // Another connection cannot be handed the same bytes.
        var other = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var otherLink = LongLink()
        let grew10 = otherLink.growOnce(&other, limit: 30)
        #expect(!grew10, "the budget is still held by the stalled connection's queued bytes")
        // The client reads again: bytes come back as the window drains, down to what the new target holds.
        stalled.windowIs(left: 40 * Self.mib)
        #expect(budget.inUse == 38 * Self.mib)
        stalled.windowIs(left: 10 * Self.mib)
        #expect(budget.inUse == 14 * Self.mib, "drained below the target: the target's share stays claimed")
        let grew11 = otherLink.growOnce(&other)
        #expect(grew11, "what was given back, another may take")
        // Claimed bytes not yet given back are used first when the stalled one grows again.
        var regrowing = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 64 * Self.mib), proof: 0)
        var regrowingLink = LongLink()
        regrowingLink.grow(&regrowing, to: 64 * Self.mib)
        regrowing.clientFellBehind(at: Self.at(regrowingLink.clock))
        regrowing.clientFellBehind(at: Self.at(regrowingLink.clock + 500))
        regrowing.windowIs(left: 64 * Self.mib)
        #expect(regrowing.target == 32 * Self.mib)
        regrowingLink.clock += 500
        let grew12 = regrowingLink.growOnce(&regrowing)
        #expect(grew12)
        #expect(regrowing.target == 64 * Self.mib)
        #expect(regrowing.budget.inUse == 62 * Self.mib, "no double claim")
        regrowing.release()
        #expect(regrowing.budget.inUse == 0)
    }

    @Test("a reader that is late now and then still grows: what it took while behind counts too")
    func lateNowAndThen() {
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 256 * Self.mib),
                                   proof: 8 * Self.mib)
        for step in 0..<4 {
            window.clientFellBehind(delivered: Self.mib, at: Self.at(step * 1000))
            window.clientKeptUp(delivered: Self.mib, at: Self.at(step * 1000 + 500))
        }
        #expect(window.target == 4 * Self.mib, "late at every other step, but never for long: it grows")
        // Behind at every step: no step leaves nothing unread, so it never grows, and it halves.
        for step in 0..<8 { window.clientFellBehind(delivered: Self.mib, at: Self.at(10_000 + step * 500)) }
        #expect(window.target == 2 * Self.mib)
    }

    @Test("a hundred fast connections share the budget instead of each claiming the cap")
    func budgetIsShared() {
        let budget = WindowBudget(total: 64 * Self.mib)
        var windows = (0..<100).map { _ in ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0) }
        var links = [LongLink](repeating: LongLink(), count: 100)
        for _ in 0..<30 {
            for index in windows.indices { links[index].step(&windows[index]) }
        }
        let beyondBase = windows.reduce(0) { $0 + $1.claimed }
        #expect(beyondBase <= 64 * Self.mib, "all together stay within the budget")
        #expect(budget.inUse == beyondBase)
        #expect(budget.inUse > 32 * Self.mib, "and they use it")
        #expect(windows.allSatisfy { $0.target <= 64 * Self.mib })
        // What one gives back, another may take.
        let heldByFirst = windows[0].claimed
        windows[0].release()
        #expect(budget.inUse == beyondBase - heldByFirst)
        #expect(windows[0].target == 2 * Self.mib)
        let before = budget.inUse
        links[1].growOnce(&windows[1])
        #expect(budget.inUse >= before)
        #expect(budget.inUse <= 64 * Self.mib)
    }

    @Test("releasing twice gives back once")
    func releaseIsIdempotent() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var link = LongLink()
        link.growOnce(&window)
        #expect(budget.inUse == 2 * Self.mib)
        window.release()
        window.release()
        #expect(budget.inUse == 0)
        #expect(window.growth == .proving(lastRate: nil), "a released window starts over")
    }

    @Test("a budget hands out no more than it has, and a partial claim still grows the window")
    func partialClaim() {
        let budget = WindowBudget(total: 3 * Self.mib)
        var first = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var second = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var (firstLink, secondLink) = (LongLink(), LongLink())
        let grew13 = firstLink.growOnce(&first)
        #expect(grew13)
        #expect(first.target == 4 * Self.mib)
        let grew14 = secondLink.growOnce(&second)
        #expect(grew14)
        #expect(second.target == 3 * Self.mib, "only what was left")
        let grew15 = secondLink.growOnce(&second, limit: 100)
        #expect(!grew15, "nothing left")
        #expect(budget.inUse == 3 * Self.mib)
    }
}
