import NIOCore

/// Which channels to ask for input after a burst from the server, so that the cost of a burst follows the
/// connections that are busy, not all the connections that are open (design section 4a).
///
/// Asking a channel costs a cache miss in libssh2 once it has been idle (see `SSHChannelSet`), so only channels
/// busy within `quietAfter` are asked on every burst: a reply comes on a channel that just sent a request, and a
/// stream keeps coming where it came before. Anything else is found by a sweep of every channel, which runs at once
/// when the burst carried more bytes than the busy channels took (data for an idle channel), and otherwise at most
/// `sweepDelay` after a burst whose bytes are not all accounted for (a small message to an idle channel: a few
/// bytes of data, EOF, close). Pure logic: the caller supplies the clock.
struct InputWatch {
    /// A channel not busy for this long is asked only by sweeps.
    static let quietAfter = TimeAmount.milliseconds(50)
    /// The longest a small message to an idle channel waits for a sweep.
    static let sweepDelay = TimeAmount.milliseconds(5)

    /// Busy slots and when each was last busy.
    private(set) var busy: [Int: NIODeadline] = [:]

    mutating func noteBusy(slot: Int, at now: NIODeadline) { busy[slot] = now }

    mutating func forget(slot: Int) { busy[slot] = nil }

    /// Calls `ask` with each slot to ask after a burst; slots quiet for `quietAfter` stop being asked.
    mutating func forEachSlotToAsk(at now: NIODeadline, _ ask: (Int) -> Void) {
        var quiet = false
        for (slot, last) in busy {
            if now - last > Self.quietAfter { quiet = true } else { ask(slot) }
        }
        if quiet { busy = busy.filter { now - $0.value <= Self.quietAfter } }
    }

    /// The slots `forEachSlotToAsk` would ask (for tests).
    mutating func slotsToAsk(at now: NIODeadline) -> [Int] {
        var slots: [Int] = []
        forEachSlotToAsk(at: now) { slots.append($0) }
        return slots
    }

    /// When to sweep every channel after a burst.
    enum Sweep: Equatable {
        /// The burst had far more bytes than the busy channels took: data for another channel.
        case now
        /// A few bytes more than SSH's framing of what was taken: a small message (EOF, close, a little data)
        /// for another channel, most likely.
        case soon
        /// Everything is accounted for; a sweep within `backstopDelay` makes sure of it.
        case backstop
    }

    /// The longest anything for an idle channel can wait unnoticed, when the bytes of every burst were accounted for.
    static let backstopDelay = TimeAmount.milliseconds(100)
    /// SSH framing of one packet, at most: length, padding length, type, channel, data length (14 bytes), up to 19
    /// bytes of padding, and a MAC of up to 64 bytes (hmac-sha2-512).
    static let framingPerPacket = 100

    /// After the busy channels took `delivered` bytes in `reads` reads of the `received` bytes of a burst.
    static func sweep(received: Int, delivered: Int, reads: Int) -> Sweep {
        // A read takes at most two 32 KiB packets of one channel; a burst of N bytes holds at most N/32 KiB full ones.
        let packets = max(reads, 1) + received / 32_768
        let unexplained = received - delivered - packets * framingPerPacket
        if unexplained > 4 * framingPerPacket { return .now }
        return unexplained > 0 ? .soon : .backstop
    }
}
