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

    /// The slots to ask after a burst; slots quiet for `quietAfter` stop being asked.
    mutating func slotsToAsk(at now: NIODeadline) -> [Int] {
        var slots: [Int] = []
        slots.reserveCapacity(busy.count)
        for (slot, last) in busy {
            if now - last > Self.quietAfter { busy[slot] = nil } else { slots.append(slot) }
        }
        return slots
    }

    enum Sweep: Equatable { case none, now, soon }

    /// After the busy channels took `delivered` bytes of the `received` bytes of a burst: whether a sweep is due.
    /// Every SSH packet adds framing, padding and a MAC (at most about 100 bytes with the largest MAC), so bytes
    /// beyond the data delivered plus that per-packet allowance must belong to a channel that was not asked.
    static func sweep(received: Int, delivered: Int) -> Sweep {
        guard received > 0 else { return .none }
        // Data packets are at most 32 KiB, so a burst holds at least received/32 KiB of them.
        let framing = 256 + received / 128
        if received > delivered + framing { return .now }
        return received > delivered ? .soon : .none
    }
}
