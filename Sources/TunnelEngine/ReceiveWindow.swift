import NIOConcurrencyHelpers
import NIOCore

/// How big the receive windows of forwarded channels may get: what the server may send on one channel before we
/// grant more. One stream moves at most one window per round trip, so a long link needs a big window; but bytes the
/// server sent and the client has not taken yet sit in our memory, and on a fast link a big window only costs the
/// server. So a window grows only while its client keeps up (as HPN-SSH does for OpenSSH) and only while growing
/// makes the stream faster, up to `cap`, and only out of a `budget` that all connections share.
///
/// The rules (README "Receive windows"):
/// - every `direct-tcpip` channel opens with `base`; a client that never keeps up never gets more;
/// - a window first tries to grow once its client has taken `proof` bytes (in steps that left nothing unread): more
///   than the kernel's socket buffers can take from a client that reads nothing, so only a client that really
///   reads qualifies;
/// - a try doubles the window (never beyond `cap`, and only with bytes claimed from `budget`: what all connections
///   together hold beyond their base) and measures the delivery rate over the next two windows: if it rose by
///   `ReceiveWindow.worthGrowing` the next try follows; if not, the window goes back and rests (1 s, doubling up to
///   16 s) before it tries again;
/// - a client that stays behind for `patience` (no step in between left nothing unread) halves its connection's
///   window (not below `base`), and again after each further `patience` behind; a reader that is only briefly late
///   (a busy machine) keeps its window. The halving only stops further grants: what the server already sent may
///   sit unread in libssh2 (up to the old window), so the budget gets bytes back only as the window drains by
///   reads (`windowIs(left:)`), never before. A client that stops reading altogether keeps what it has (within the
///   cap and the budget) until it reads again or its connection ends.
public struct ReceiveWindowLimits: Sendable {
    public var base: Int
    public var cap: Int
    public var budget: WindowBudget
    public var proof: Int

    public init(base: Int = ReceiveWindowLimits.defaultBase, cap: Int = ReceiveWindowLimits.defaultCap,
                budget: WindowBudget = .shared, proof: Int = ReceiveWindowLimits.defaultProof) {
        self.base = base
        self.cap = max(cap, base)
        self.budget = budget
        self.proof = proof
    }

    /// OpenSSH's and libssh2's own fixed window, so a connection starts as fast as with `ssh -L`. A client that reads
    /// nothing holds at most this (libssh2 counts unread data against the window) plus NIO's write buffer in our
    /// memory (measured: 2.3 MiB per connection).
    public static let defaultBase = 2 << 20
    /// Linux's socket buffers take up to about 4 MiB from a client that reads nothing (tcp_wmem's maximum) before
    /// the client's socket stops being writable: twice that proves a client reads.
    public static let defaultProof = 8 << 20
    /// 16 MiB: about 160 MB/s over a 100 ms round trip, 320 over 50 ms. Bigger windows cost OpenSSH's sshd more than
    /// they bring: it reads from the target as far as the window lets and moves what is left of that buffer as it
    /// sends, so past about 16 MiB a window slows its own stream (`tunnel-bench long-link`, 100 ms, 1 GiB: 8 MiB
    /// moved 74 MB/s, 16 MiB 106 to 140, 32 MiB 209 at first and then 36 once sshd's buffer had filled, 64 MiB 36;
    /// a smaller window afterwards stays slow until that buffer drains, which rate probing cannot see coming).
    public static let defaultCap = 16 << 20
    public static let `default` = ReceiveWindowLimits()
}

/// Bytes of receive window beyond the base windows, shared by every connection that uses it (by default every
/// connection of the process: `shared`). Claimed and given back from any event loop, hence the lock; that happens
/// only when a window grows or shrinks, never per read.
public final class WindowBudget: Sendable {
    public let total: Int
    private let held = NIOLockedValueBox(0)

    public init(total: Int) {
        self.total = max(total, 0)
    }

    /// 256 MiB: eighteen connections at the full (default) cap, or many at a few times their base.
    public static let defaultTotal = 256 << 20
    public static let shared = WindowBudget(total: WindowBudget.defaultTotal)

    /// Bytes currently claimed.
    public var inUse: Int { held.withLockedValue { $0 } }

    /// Up to `wanted` bytes, as many as are left.
    func claim(_ wanted: Int) -> Int {
        held.withLockedValue { held in
            let granted = max(0, min(wanted, total - held))
            held += granted
            return granted
        }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        held.withLockedValue { $0 = max(0, $0 - bytes) }
    }
}

/// One connection's receive window: how far to let the server run ahead of the client, given how the client keeps
/// up and whether a bigger window pays. Plain value logic (no I/O); `ForwardedConnection` reports what its reads saw
/// (with the time) and grants what this says.
///
/// A bigger window only helps while the window is what limits the stream: over a long link one window per round
/// trip, while on a fast link (loopback, a LAN) a window far below the base already covers rate x round trip, and a
/// bigger one only lets the server's channel buffer fill (which costs sshd a `memmove` per send: measured 45% of all
/// CPU with a 64 MiB window over loopback). Neither the round trip nor the bottleneck can be read off the SSH
/// stream (the kernel's `tcpi_rtt` sees only the first hop, which through a jump host or a relay is not the link
/// that matters), so a window grows the way TCP's slow start probes: it doubles, the delivery rate over the next
/// two (bigger) windows is measured, and the step is kept only if the rate rose by `worthGrowing`; otherwise the
/// window goes back and rests before it tries again (`restAfterFailure`, doubling up to `longestRest`).
///
/// libssh2 itself tops a channel's window up to the size it was opened with (`base` here) whenever a read finds it
/// below three quarters of that; everything beyond `base` is granted by us, refilled to `target` once a quarter of
/// it is used, so libssh2's own top-up does not come into play while the window is above `base`.
struct ReceiveWindow {
    /// The window the channel was opened with: libssh2 keeps it topped up to this by itself.
    let base: Int
    let cap: Int
    let budget: WindowBudget
    /// Bytes a client takes without falling behind before its window first grows.
    let proof: Int
    /// The window the server is let to run up to: `base` until the client has shown it keeps up.
    private(set) var target: Int
    /// Bytes claimed from the budget: what this connection may really hold beyond `base`, which after a halving
    /// is more than `target - base` until the window has drained to the new target (see `windowIs(left:)`).
    private(set) var claimed = 0
    /// Bytes the client took before its window first grew (proof that it reads).
    private(set) var keptUpFor = 0
    /// The client has taken `proof` bytes without falling behind: it reads (a slow start is not held against it
    /// later: only its window shrinks).
    private(set) var proven = false
    /// Since when the client has been behind (nil: the last step left nothing unread), or since the last halving.
    private(set) var behindSince: NIODeadline?
    /// Where growing stands.
    private(set) var growth = Growth.proving(lastRate: nil)
    /// The delivery rate being measured (nil while none is).
    private var measurement: RateMeasurement?
    /// How long the window rests after the next try that does not pay.
    private var nextRest = Self.restAfterFailure

    /// How long a client may stay behind before its window is halved.
    static let patience = TimeAmount.milliseconds(500)
    /// A bigger window is kept only if the rate rose by this factor: a stream the window limits nearly doubles
    /// (the round trip is the same, the window twice as big); one limited by the CPU, the server or the client moves
    /// about as before. Over loopback, tries from 2 to 4 MiB measured 0.95x to 1.24x (noise on a shared machine);
    /// over a long link, a 4x leap that met the CPU's limit still gained 1.4x, which a higher bar would throw away.
    static let worthGrowing = 1.25
    /// A try whose rate rose by at least this share of the window's growth (1.7x for a doubling) shows a stream that
    /// only the window limits, as TCP's slow start assumes: the next try quadruples instead of doubling, so a long
    /// link reaches its window in half the tries (each costs about three round trips: one for the bigger grant to
    /// take effect, two to measure).
    static let windowLimited = 0.85
    /// A rate is measured over at least this many windows' worth: over a long link a window arrives as a burst once
    /// per round trip, so one window's worth measured 80 to 200 MB/s for the same 8 MiB window at 50 ms
    /// (`tunnel-bench long-link`, a loaded machine); two smooth that out at the cost of a slower climb.
    static let windowsPerMeasurement = 2
    /// ...and at least this long (on a fast link a window passes in a few milliseconds, which a busy machine's
    /// scheduling would make noise of).
    static let shortestMeasurement = TimeAmount.milliseconds(20)
    /// The first rest after a try that did not pay; each further one doubles it, up to `longestRest`; a try that
    /// pays starts over. Conditions change (other streams end, the link's load moves), so growth is tried again.
    static let restAfterFailure = TimeAmount.seconds(1)
    static let longestRest = TimeAmount.seconds(16)

    enum Growth: Equatable {
        /// The client has not taken `proof` bytes yet; `lastRate` is the delivery rate (bytes per second) over the
        /// last whole measurement, what the first try is compared with.
        case proving(lastRate: Double?)
        /// Measuring the rate at `target`, to compare the next try with.
        case measuring
        /// The window just doubled from `from`. What the old window still brings (`settling` more bytes) arrives at
        /// the old pace; the rate after that is compared with `rateBefore`.
        case trying(from: Int, rateBefore: Double, settling: Int)
        /// The last try did not pay, the client fell behind, or the cap or the budget stops growth: the window
        /// stays as it is until `until`, then the rate is measured afresh.
        case resting(until: NIODeadline)
    }

    init(base: Int, cap: Int, budget: WindowBudget, proof: Int = ReceiveWindowLimits.defaultProof) {
        self.base = base
        self.cap = max(cap, base)
        self.budget = budget
        self.proof = proof
        self.target = base
    }

    /// What a step did to the window, for the log.
    enum Change: Equatable {
        /// A try: the window doubled from `from` (which moved `rateBefore` bytes per second) to `to`.
        case tried(from: Int, to: Int, rateBefore: Double)
        /// The try did not pay: `tried` moved `rate`, against `rateBefore` at `to`, to which the window went back.
        case wentBack(tried: Int, to: Int, rate: Double, rateBefore: Double)

        var grew: Bool { if case .tried = self { true } else { false } }
    }

    /// The client took `delivered` bytes by `now` and everything the server had sent was read: it keeps up. Counts
    /// towards the proof and the rate being measured; once a measurement covers two windows, the window may
    /// double (within the cap and what the budget has left), or go back if the last doubling did not pay.
    @discardableResult
    mutating func clientKeptUp(delivered: Int, at now: NIODeadline) -> Change? {
        if !proven { keptUpFor += delivered }
        behindSince = nil
        switch growth {
        case .proving(let lastRate):
            let rate = measured(delivered, at: now) ?? lastRate
            guard keptUpFor >= max(proof, target), let rate else {
                growth = .proving(lastRate: rate)
                return nil
            }
            proven = true
            return grow(from: rate, at: now)
        case .measuring:
            guard let rate = measured(delivered, at: now) else { return nil }
            return grow(from: rate, at: now)
        case .trying(let from, let rateBefore, let settling):
            if settling > 0 {
                growth = .trying(from: from, rateBefore: rateBefore, settling: settling - delivered)
                if settling <= delivered { measurement = RateMeasurement(since: now) }
                return nil
            }
            // As long as two old windows took, with no gain, already tells: a window the server cannot serve (sshd
            // moves its channel buffer, which a big window lets grow) slows the stream, and measuring two new
            // windows at that pace cost a 256 MiB download over 100 ms a third of its speed.
            let failing = isFailing(from: from, rateBefore: rateBefore, delivered: delivered, at: now)
            guard let rate = failing ? rateSoFar(delivered, at: now) : measured(delivered, at: now) else { return nil }
            guard rate >= rateBefore * Self.worthGrowing else {
                // The bigger window moved no more: it is not what limits this stream. Back to the old one.
                let tried = target
                target = from
                rest(at: now)
                return .wentBack(tried: tried, to: from, rate: rate, rateBefore: rateBefore)
            }
            nextRest = Self.restAfterFailure
            // A stream that moved (nearly) twice as much per doubling is limited by the window alone: leap.
            let leap = rate >= rateBefore * Self.windowLimited * (Double(target) / Double(from))
            return grow(from: rate, by: leap ? 4 : 2, at: now)
        case .resting(let until):
            guard now >= until else { return nil }
            growth = .measuring
            measurement = RateMeasurement(since: now)
            return nil
        }
    }

    /// Reading stopped at `now` because the client was not taking bytes as fast as they came, after it took
    /// `delivered`. Once it has been behind for `patience`, halve the window (not below `base`), so a stalled client
    /// is granted less and, once it has read down what it was sent, holds less and others may grow. Nothing goes
    /// back to the budget here: libssh2 1.10 keeps what arrived queued until it is read and counts it in the window
    /// until then (packet.c adds it to `read_avail` only; channel.c takes it off `window_size` as it is read), so the
    /// connection may still hold its old window; `windowIs(left:)` gives bytes back as they are read. What it took
    /// still counts towards the proof and the rate: on a busy machine a reader that keeps up is late now and then,
    /// and must not have to start over each time.
    mutating func clientFellBehind(delivered: Int = 0, at now: NIODeadline) {
        clientTook(delivered: delivered)
        guard let since = behindSince else {
            behindSince = now
            return
        }
        guard now - since >= Self.patience, target > base else { return }
        behindSince = now
        target = max(base, target / 2)
        // The client is what limits this stream: growing would not pay now.
        if proven { rest(at: now) }
    }

    /// Adds `delivered` to the rate being measured (starting one at `now` if none is); the rate once the
    /// measurement covers `windowsPerMeasurement` windows and `shortestMeasurement`, and a new measurement starts.
    private mutating func measured(_ delivered: Int, at now: NIODeadline) -> Double? {
        guard var running = measurement else {
            measurement = RateMeasurement(since: now)
            return nil
        }
        running.bytes += delivered
        let elapsed = now - running.since
        guard running.bytes >= Self.windowsPerMeasurement * target, elapsed >= Self.shortestMeasurement else {
            measurement = running
            return nil
        }
        measurement = RateMeasurement(since: now)
        return Double(running.bytes) / elapsed.seconds
    }

    /// The client took `delivered` bytes in a step that says nothing about how it keeps up (one cut short by a grant
    /// libssh2 holds half-sent, or one between its verdicts): they count towards the proof and the rate.
    mutating func clientTook(delivered: Int) {
        if !proven { keptUpFor += delivered }
        measurement?.bytes += delivered
        if case .trying(let from, let rateBefore, let settling) = growth, settling > 0 {
            growth = .trying(from: from, rateBefore: rateBefore, settling: settling - delivered)
        }
    }

    /// Whether a try from `from` has, with `delivered`, run for as long as two old windows took at `rateBefore` (and
    /// `shortestMeasurement`) at less than `worthGrowing` times that rate. Bounded by time, not bytes: a window
    /// sshd cannot serve well (it moves its channel buffer, which a 32 MiB window lets grow) ran at 12 MB/s where
    /// 16 MiB had run at 65, and two old windows' worth at that pace took almost 3 s of a 256 MiB download.
    private func isFailing(from: Int, rateBefore: Double, delivered: Int, at now: NIODeadline) -> Bool {
        guard let running = measurement, rateBefore > 0 else { return false }
        let elapsed = now - running.since
        let oldWindowsTook = Double(Self.windowsPerMeasurement * from) / rateBefore
        guard elapsed.seconds >= oldWindowsTook, elapsed >= Self.shortestMeasurement else { return false }
        return Double(running.bytes + delivered) / elapsed.seconds < rateBefore * Self.worthGrowing
    }

    /// The rate of the measurement so far with `delivered`, which ends it.
    private mutating func rateSoFar(_ delivered: Int, at now: NIODeadline) -> Double? {
        guard let running = measurement, now > running.since else { return nil }
        measurement = nil
        return Double(running.bytes + delivered) / (now - running.since).seconds
    }

    /// Grows the window `factor` times (within the cap and the budget) to try whether that pays against `rate`;
    /// rests where it cannot grow.
    private mutating func grow(from rate: Double, by factor: Int = 2, at now: NIODeadline) -> Change? {
        let wanted = min(factor * target, cap)
        // Bytes still claimed from before a halving (the window has not drained yet) are used first.
        if wanted > target { claimed += budget.claim(wanted - base - claimed) }
        let grown = min(wanted, base + claimed)
        guard grown > target else {
            rest(at: now)
            return nil
        }
        defer { target = grown }
        growth = .trying(from: target, rateBefore: rate, settling: target)
        measurement = nil
        return .tried(from: target, to: grown, rateBefore: rate)
    }

    private mutating func rest(at now: NIODeadline) {
        growth = .resting(until: now + nextRest)
        measurement = nil
        nextRest = min(nextRest * 2, Self.longestRest)
    }

    /// The channel's window is now `left`: what the server may still send plus what arrived and was not read yet
    /// (libssh2's `window_size`, which only reads take down), i.e. the most this connection may hold. Gives back to
    /// the budget what is claimed beyond both that and `target`: after a halving, bytes come back as the client
    /// reads them, not before. Call after each step's reads.
    mutating func windowIs(left: Int) {
        let mayHold = max(0, max(target, left) - base)
        guard claimed > mayHold else { return }
        budget.release(claimed - mayHold)
        claimed = mayHold
    }

    /// Bytes to grant now, given `windowLeft` (what the server may still send, with what arrived and was not read
    /// yet): enough to bring it back to `target` once a quarter of it is used; nil before that, or at `base`
    /// (libssh2's own). Asked after every read, not only after a step: libssh2 tops the window up to `base` by
    /// itself when a read finds it below three quarters of `base`, and a step that reads a whole burst from a long
    /// link got there before a grant of ours did, so a 4 MiB window ran at 1.25x of the base's rate, not 1.7x.
    func grant(windowLeft: Int) -> Int? {
        guard target > base, windowLeft < target - target / 4 else { return nil }
        return target - windowLeft
    }

    /// The connection ended: give back what it held.
    mutating func release() {
        budget.release(claimed)
        claimed = 0
        target = base
        keptUpFor = 0
        behindSince = nil
        proven = false
        growth = .proving(lastRate: nil)
        measurement = nil
        nextRest = Self.restAfterFailure
    }

    /// Below this libssh2 1.10 widens the window itself at the start of a read of `readSize` bytes (channel.c,
    /// `_libssh2_channel_read`): a read that then returns "would block" may have left its adjust half-sent.
    func libssh2AdjustsBelow(readSize: Int) -> Int { base / 4 * 3 + readSize }
}

/// Bytes delivered since a moment: a delivery rate being measured.
struct RateMeasurement: Equatable {
    let since: NIODeadline
    var bytes = 0
}

extension TimeAmount {
    var seconds: Double { Double(nanoseconds) / 1e9 }
}
