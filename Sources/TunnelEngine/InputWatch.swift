import NIOCore

/// Which channels to ask for input after a burst from the server, so that the cost of a burst follows the
/// connections that are busy, not all the connections that are open (design section 4a).
///
/// Asking a channel costs a cache miss in libssh2 once it has been idle (see `SSHChannelSet`), so only channels
/// with a reason are asked on every burst: one that sent the server something is asked until a reply could have
/// come (a few of the session's round trips; a request's reply comes there), and one that received something is
/// asked for `quietAfter` more (a stream keeps coming where it came before). Anything else is found by a sweep of
/// every channel, which runs at once when the burst carried more bytes than the asked channels took (data for
/// another channel), within `sweepDelay` when a few bytes are not accounted for (a small message: a little data,
/// EOF, close), and within `backstopDelay` of any burst. Pure logic: the caller supplies the clock.
struct InputWatch {
    /// How long a channel that received something is asked after it.
    static let quietAfter = TimeAmount.milliseconds(50)
    /// The longest a small message to a channel not being asked waits for a sweep.
    static let sweepDelay = TimeAmount.milliseconds(5)
    /// The longest anything can wait unnoticed when the bytes of every burst were accounted for.
    static let backstopDelay = TimeAmount.milliseconds(100)

    /// SSH framing of one packet at most, for this session: length, padding length, type, channel, data length
    /// (14 bytes), up to 19 bytes of padding, and the MAC. The default assumes the largest MAC (64 bytes).
    var framingPerPacket = 14 + 19 + 64

    /// How long after sending a channel is asked: three smoothed round trips to the server, at least 50 ms.
    private(set) var replyWait = TimeAmount.milliseconds(50)
    private var smoothedRoundTrip: Int64?  // nanoseconds

    /// Until when each slot is asked.
    private(set) var askUntil: [Int: NIODeadline] = [:]

    /// A round trip to the server was measured (a channel open and its answer).
    mutating func noteRoundTrip(_ sample: TimeAmount) {
        let nanoseconds = max(sample.nanoseconds, 0)
        // A channel open's answer also waits for the server's connect to the target: clamp such outliers.
        let bounded = smoothedRoundTrip.map { min(nanoseconds, $0 * 4) } ?? nanoseconds
        let smoothed = smoothedRoundTrip.map { ($0 * 7 + bounded) / 8 } ?? bounded
        smoothedRoundTrip = smoothed
        replyWait = max(.milliseconds(50), .nanoseconds(smoothed * 3))
    }

    /// The channel in `slot` sent the server something: a reply may follow within a few round trips.
    mutating func noteSent(slot: Int, at now: NIODeadline) { extend(slot, to: now + replyWait) }

    /// The channel in `slot` received something (or just opened): more may follow.
    mutating func noteReceived(slot: Int, at now: NIODeadline) { extend(slot, to: now + Self.quietAfter) }

    private mutating func extend(_ slot: Int, to deadline: NIODeadline) {
        if let current = askUntil[slot], current >= deadline { return }
        askUntil[slot] = deadline
    }

    mutating func forget(slot: Int) { askUntil[slot] = nil }

    /// Calls `ask` with each slot to ask after a burst; slots past their deadline stop being asked.
    mutating func forEachSlotToAsk(at now: NIODeadline, _ ask: (Int) -> Void) {
        var expired = false
        for (slot, until) in askUntil {
            if now > until { expired = true } else { ask(slot) }
        }
        if expired { askUntil = askUntil.filter { now <= $0.value } }
    }

    /// The slots `forEachSlotToAsk` would ask (for tests).
    mutating func slotsToAsk(at now: NIODeadline) -> [Int] {
        var slots: [Int] = []
        forEachSlotToAsk(at: now) { slots.append($0) }
        return slots
    }

    /// When to sweep every channel after a burst.
    enum Sweep: Equatable {
        /// The burst had far more bytes than the asked channels took: data for another channel.
        case now
        /// Bytes beyond SSH's framing of what was taken, or nothing taken at all: a small message for another
        /// channel, most likely.
        case soon
        /// Everything is accounted for; a sweep within `backstopDelay` makes sure of it.
        case backstop
    }

    /// After the asked channels took `delivered` bytes of data out of the `received` bytes of a burst, and
    /// `packets` packets are otherwise known to have been in it (data reads, open answers, EOFs and closes seen,
    /// window adjusts that woke a connection).
    func sweep(received: Int, delivered: Int, packets known: Int) -> Sweep {
        guard received > 0 else { return .backstop }
        // A burst of N bytes holds at least N/32 KiB full data packets.
        let packets = max(known, 1) + received / 32_768
        let unexplained = received - delivered - packets * framingPerPacket
        if unexplained > 4 * framingPerPacket { return .now }
        return unexplained > 0 || known == 0 ? .soon : .backstop
    }

    /// The MAC length of a MAC algorithm name libssh2 reports, to size `framingPerPacket`; nil if unknown.
    static func macLength(_ algorithm: String) -> Int? {
        let name = algorithm.replacingOccurrences(of: "-etm@openssh.com", with: "")
        switch name {
        case "hmac-sha2-512": return 64
        case "hmac-sha2-256": return 32
        case "hmac-sha1", "hmac-ripemd160", "hmac-ripemd160@openssh.com": return 20
        case "hmac-md5": return 16
        case "hmac-sha1-96", "hmac-md5-96": return 12
        default: return nil
        }
    }
}
