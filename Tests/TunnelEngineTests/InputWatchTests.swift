import NIOCore
import Testing
@testable import TunnelEngine

/// Which channels are asked after a burst from the server, without a server.
@Suite("InputWatch: ask the busy channels, sweep for the rest")
struct InputWatchTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("busy channels are asked; quiet ones drop out after quietAfter")
    func quietChannelsDropOut() {
        var watch = InputWatch()
        watch.noteBusy(slot: 1, at: start)
        watch.noteBusy(slot: 2, at: start + .milliseconds(40))
        #expect(Set(watch.slotsToAsk(at: start + .milliseconds(45))) == [1, 2])
        #expect(watch.slotsToAsk(at: start + .milliseconds(60)) == [2], "slot 1 was quiet for 60 ms")
        #expect(watch.slotsToAsk(at: start + .milliseconds(200)).isEmpty)
        watch.noteBusy(slot: 1, at: start + .milliseconds(200))
        #expect(watch.slotsToAsk(at: start + .milliseconds(201)) == [1], "busy again, asked again")
    }

    @Test("a forgotten slot is not asked (its channel is gone)")
    func forget() {
        var watch = InputWatch()
        watch.noteBusy(slot: 7, at: start)
        watch.forget(slot: 7)
        #expect(watch.slotsToAsk(at: start).isEmpty)
    }

    @Test("a burst the busy channels took whole needs only the backstop sweep")
    func accountedBurst() {
        // A 64-byte reply arrives as about 130 bytes on the wire.
        #expect(InputWatch.sweep(received: 130, delivered: 64, reads: 1) == .backstop)
        #expect(InputWatch.sweep(received: 64, delivered: 64, reads: 1) == .backstop)
        // Bulk: 32 KiB packets, each with its framing, two per read.
        #expect(InputWatch.sweep(received: 4 * 32_900, delivered: 4 * 32_768, reads: 2) == .backstop)
    }

    @Test("a small message beside a reply (EOF for an idle channel) is swept for soon")
    func smallExtraMessage() {
        // The reply (130 bytes) plus an EOF and a close for another channel (2 x 64).
        #expect(InputWatch.sweep(received: 130 + 128, delivered: 64, reads: 1) == .soon)
        // Nothing delivered at all: a message for a channel nobody asked.
        #expect(InputWatch.sweep(received: 150, delivered: 0, reads: 0) == .soon)
    }

    @Test("bytes the busy channels did not take mean data for another channel: sweep now")
    func unaccountedBurst() {
        #expect(InputWatch.sweep(received: 2_000, delivered: 64, reads: 1) == .now)
        #expect(InputWatch.sweep(received: 40_000, delivered: 0, reads: 0) == .now)
    }
}
