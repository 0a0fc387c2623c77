import NIOConcurrencyHelpers
import NIOCore

/// How big the receive windows of forwarded channels may get: what the server may send on one channel before we
/// grant more. One stream moves at most one window per round trip, so a long link needs a big window; but bytes the
/// server sent and the client has not taken yet sit in our memory, so a window grows only while its client keeps up
/// (as HPN-SSH does for OpenSSH), up to `cap`, and only out of a `budget` that all connections share.
///
/// The rules (README "Receive windows"):
/// - every `direct-tcpip` channel opens with `base`; a client that never keeps up never gets more;
/// - a window first grows once its client has taken `proof` bytes (in a step that left nothing unread): more than the kernel's
///   socket buffers can take from a client that reads nothing, so only a client that really reads qualifies;
/// - after that, each whole window's worth taken without falling behind doubles the window, never beyond `cap`,
///   and only with bytes claimed from `budget` (what all connections together hold beyond their base);
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
    /// The base: windows do not grow unless an embedder sets a cap (`ConnectionSettings.receiveWindow`; 64 MiB is
    /// about 500 MB/s over a 100 ms round trip). Growth is off by default because a grown window costs the *server*
    /// on a fast link: `tunnel-bench` measured one loopback download at 67 MB/s against 531 for `ssh -L` with a
    /// 64 MiB cap (sshd's `memmove` of the channel buffer the window lets fill: 45% of all CPU), against 328 with
    /// 2 MiB. It comes back on once growth follows the round trip rather than only the client's pace.
    public static let defaultCap = defaultBase
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

    /// 256 MiB: four connections at the full cap, or many at a few times their base.
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
/// up. Plain value logic (no I/O); `ForwardedConnection` reports what its reads saw and grants what this says.
///
/// libssh2 itself tops a channel's window up to the size it was opened with (`base` here) whenever a read finds it
/// below three quarters of that; everything beyond `base` is granted by us, refilled to `target` once less than
/// half of it is left, so libssh2's own top-up does not come into play while the window is above `base`.
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
    /// Bytes the client took since the window last grew (checked for growth after a step that left nothing
    /// unread; a halving outpaces growth for a client that keeps falling behind).
    private(set) var keptUpFor = 0
    /// The client has taken `proof` bytes without falling behind: it reads (a slow start is not held against it
    /// later: only its window shrinks).
    private(set) var proven = false
    /// Since when the client has been behind (nil: the last step left nothing unread), or since the last halving.
    private(set) var behindSince: NIODeadline?
    /// How long a client may stay behind before its window is halved.
    static let patience = TimeAmount.milliseconds(500)

    init(base: Int, cap: Int, budget: WindowBudget, proof: Int = ReceiveWindowLimits.defaultProof) {
        self.base = base
        self.cap = max(cap, base)
        self.budget = budget
        self.proof = proof
        self.target = base
    }

    /// The client took `delivered` bytes and everything the server had sent was read: it keeps up. After `proof`
    /// bytes, and then after each whole window's worth, the window doubles (within the cap and what the budget has
    /// left). Returns whether it grew.
    @discardableResult
    mutating func clientKeptUp(delivered: Int) -> Bool {
        keptUpFor += delivered
        behindSince = nil
        guard keptUpFor >= (proven ? target : max(target, proof)), target < cap else { return false }
        proven = true
        keptUpFor = 0
        let wanted = min(2 * target, cap)
        // Bytes still claimed from before a halving (the window has not drained yet) are used first.
        claimed += budget.claim(wanted - base - claimed)
        let grown = min(wanted, base + claimed)
        defer { target = grown }
        return grown > target
    }

    /// Reading stopped at `now` because the client was not taking bytes as fast as they came, after it took
    /// `delivered`. Once it has been behind for `patience`, halve the window (not below `base`), so a stalled client
    /// is granted less and, once it has read down what it was sent, holds less and others may grow. Nothing goes
    /// back to the budget here: libssh2 1.10 keeps what arrived queued until it is read and counts it in the window
    /// until then (packet.c adds it to `read_avail` only; channel.c takes it off `window_size` as it is read), so the
    /// connection may still hold its old window; `windowIs(left:)` gives bytes back as they are read. What it took
    /// still counts towards growing: on a busy machine a reader that keeps up is late now and then, and must not have
    /// to start over each time.
    mutating func clientFellBehind(delivered: Int = 0, at now: NIODeadline) {
        keptUpFor += delivered
        guard let since = behindSince else {
            behindSince = now
            return
        }
        guard now - since >= Self.patience, target > base else { return }
        behindSince = now
        target = max(base, target / 2)
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
    /// yet; after a read that drained the channel, nothing is unread): enough to bring it back to
    /// `target` once less than half is left; nil while the window is above half, or at `base` (libssh2's own).
    func grant(windowLeft: Int) -> Int? {
        guard target > base, windowLeft < target / 2 else { return nil }
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
    }

    /// Below this libssh2 1.10 widens the window itself at the start of a read of `readSize` bytes (channel.c,
    /// `_libssh2_channel_read`): a read that then returns "would block" may have left its adjust half-sent.
    func libssh2AdjustsBelow(readSize: Int) -> Int { base / 4 * 3 + readSize }
}
