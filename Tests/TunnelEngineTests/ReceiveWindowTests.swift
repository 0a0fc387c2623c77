import NIOCore
import Testing
@testable import TunnelEngine

/// The receive-window rules (README "Receive windows"), without sockets or SSH.
@Suite("ReceiveWindow: grow while the client keeps up, within the cap and the budget")
struct ReceiveWindowTests {
    static let mib = 1 << 20

    /// A moment `milliseconds` into a made-up clock.
    static func at(_ milliseconds: Int) -> NIODeadline { .uptimeNanoseconds(UInt64(1_000 + milliseconds) * 1_000_000) }

    @Test("a new window is the base, and at the base libssh2's own top-up is left to work alone")
    func startsAtBase() {
        let window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 256 * Self.mib), proof: 0)
        #expect(window.target == 2 * Self.mib)
        #expect(window.claimed == 0)
        #expect(window.grant(windowLeft: 0) == nil, "at the base libssh2 grants by itself; a grant of ours would double it")
    }

    @Test("the first growth waits for proof that the client reads: more than socket buffers hide")
    func proofBeforeTheFirstGrowth() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: Self.mib, cap: 64 * Self.mib, budget: budget, proof: 8 * Self.mib)
        for _ in 0..<7 { window.clientKeptUp(delivered: Self.mib) }
        #expect(window.target == Self.mib, "7 MiB into the kernel's buffers prove nothing")
        window.clientKeptUp(delivered: Self.mib)
        #expect(window.target == 2 * Self.mib)
        window.clientKeptUp(delivered: 2 * Self.mib)
        #expect(window.target == 4 * Self.mib, "once proven, a window's worth is enough")
        window.clientFellBehind(at: Self.at(0))
        window.clientFellBehind(at: Self.at(600))
        #expect(window.target == 2 * Self.mib)
        window.clientKeptUp(delivered: 2 * Self.mib)
        #expect(window.target == 4 * Self.mib, "a client that proved it reads stays proven; only its window shrank")
    }

    @Test("a client that never keeps up never gets more than the base")
    func slowFromTheStart() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 8 * Self.mib)
        // What the kernel's socket buffers take from a client that reads nothing looks like keeping up...
        for _ in 0..<4 { window.clientKeptUp(delivered: Self.mib) }
        // ...then it is behind for good.
        for step in 0..<100 { window.clientFellBehind(at: Self.at(step * 100)) }
        #expect(window.target == 2 * Self.mib)
        #expect(budget.inUse == 0)
    }

    @Test("a whole window taken without falling behind doubles it, up to the cap and no further")
    func growsToTheCap() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 16 * Self.mib, budget: budget, proof: 0)
        let grewAfterHalfAWindow = window.clientKeptUp(delivered: Self.mib)
        #expect(!grewAfterHalfAWindow, "half a window is not yet proof")
        let grewAfterAWholeWindow = window.clientKeptUp(delivered: Self.mib)
        #expect(grewAfterAWholeWindow)
        #expect(window.target == 4 * Self.mib)
        var sizes: [Int] = []
        for _ in 0..<20 {
            window.clientKeptUp(delivered: window.target)
            sizes.append(window.target / Self.mib)
        }
        #expect(sizes.prefix(3) == [8, 16, 16])
        #expect(sizes.allSatisfy { $0 <= 16 }, "no connection over the cap")
        #expect(budget.inUse == 14 * Self.mib, "what is held beyond the base is claimed from the budget")
    }

    @Test("grants refill to the target once less than half is left")
    func grants() {
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 256 * Self.mib), proof: 0)
        window.clientKeptUp(delivered: 2 * Self.mib)
        window.clientKeptUp(delivered: 4 * Self.mib)
        #expect(window.target == 8 * Self.mib)
        #expect(window.grant(windowLeft: 5 * Self.mib) == nil, "more than half open: nothing yet")
        #expect(window.grant(windowLeft: 3 * Self.mib) == 5 * Self.mib)
        #expect(window.grant(windowLeft: 0) == 8 * Self.mib)
        // Refilling at half keeps the window above libssh2's own top-up point, so the two never both grant.
        #expect(window.target / 2 > window.libssh2AdjustsBelow(readSize: 64 * 1024))
    }

    @Test("a client behind for longer than the patience halves its window, not below the base, and gives the rest back as it drains")
    func fallsBehind() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        for _ in 0..<3 { window.clientKeptUp(delivered: window.target) }
        #expect(window.target == 16 * Self.mib)
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
        while stalled.target < 64 * Self.mib { stalled.clientKeptUp(delivered: stalled.target) }
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
        let otherGrew = other.clientKeptUp(delivered: 2 * Self.mib)
        #expect(!otherGrew, "the budget is still held by the stalled connection's queued bytes")
        // The client reads again: bytes come back as the window drains, down to what the new target holds.
        stalled.windowIs(left: 40 * Self.mib)
        #expect(budget.inUse == 38 * Self.mib)
        stalled.windowIs(left: 10 * Self.mib)
        #expect(budget.inUse == 14 * Self.mib, "drained below the target: the target's share stays claimed")
        let otherGrewLater = other.clientKeptUp(delivered: 2 * Self.mib)
        #expect(otherGrewLater, "what was given back, another may take")
        // Claimed bytes not yet given back are used first when the stalled one grows again.
        var regrowing = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: WindowBudget(total: 64 * Self.mib), proof: 0)
        while regrowing.target < 64 * Self.mib { regrowing.clientKeptUp(delivered: regrowing.target) }
        regrowing.clientFellBehind(at: Self.at(0))
        regrowing.clientFellBehind(at: Self.at(500))
        regrowing.windowIs(left: 64 * Self.mib)
        #expect(regrowing.target == 32 * Self.mib)
        let regrew = regrowing.clientKeptUp(delivered: 32 * Self.mib)
        #expect(regrew)
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
            window.clientKeptUp(delivered: Self.mib)
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
        for _ in 0..<10 {
            for index in windows.indices { windows[index].clientKeptUp(delivered: windows[index].target) }
        }
        let beyondBase = windows.reduce(0) { $0 + $1.claimed }
        #expect(beyondBase <= 64 * Self.mib, "all together stay within the budget")
        #expect(budget.inUse == beyondBase)
        #expect(windows.allSatisfy { $0.target <= 64 * Self.mib })
        // What one gives back, another may take.
        let heldByFirst = windows[0].claimed
        windows[0].release()
        #expect(budget.inUse == beyondBase - heldByFirst)
        #expect(windows[0].target == 2 * Self.mib)
        let before = budget.inUse
        windows[1].clientKeptUp(delivered: windows[1].target)
        #expect(budget.inUse >= before)
        #expect(budget.inUse <= 64 * Self.mib)
    }

    @Test("releasing twice gives back once")
    func releaseIsIdempotent() {
        let budget = WindowBudget(total: 256 * Self.mib)
        var window = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        window.clientKeptUp(delivered: 2 * Self.mib)
        #expect(budget.inUse == 2 * Self.mib)
        window.release()
        window.release()
        #expect(budget.inUse == 0)
    }

    @Test("a budget hands out no more than it has, and a partial claim still grows the window")
    func partialClaim() {
        let budget = WindowBudget(total: 3 * Self.mib)
        var first = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        var second = ReceiveWindow(base: 2 * Self.mib, cap: 64 * Self.mib, budget: budget, proof: 0)
        let firstGrew = first.clientKeptUp(delivered: 2 * Self.mib)
        #expect(firstGrew)
        #expect(first.target == 4 * Self.mib)
        let secondGrew = second.clientKeptUp(delivered: 2 * Self.mib)
        #expect(secondGrew)
        #expect(second.target == 3 * Self.mib, "only what was left")
        let secondGrewAgain = second.clientKeptUp(delivered: 3 * Self.mib)
        #expect(!secondGrewAgain, "nothing left")
        #expect(budget.inUse == 3 * Self.mib)
    }
}
