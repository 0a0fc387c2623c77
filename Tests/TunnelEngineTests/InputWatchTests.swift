import NIOCore
import Testing
@testable import TunnelEngine

/// Which channels are asked after a burst from the server, without a server.
@Suite("InputWatch: ask the channels with a reason, sweep for the rest")
struct InputWatchTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("a channel that received is asked for quietAfter; then it drops out")
    func receivedChannelsDropOut() {
        var watch = InputWatch()
        watch.noteReceived(slot: 1, at: start)
        watch.noteReceived(slot: 2, at: start + .milliseconds(40))
        #expect(Set(watch.slotsToAsk(at: start + .milliseconds(45))) == [1, 2])
        #expect(watch.slotsToAsk(at: start + .milliseconds(60)) == [2], "slot 1 was quiet for 60 ms")
        #expect(watch.slotsToAsk(at: start + .milliseconds(200)).isEmpty)
        watch.noteReceived(slot: 1, at: start + .milliseconds(200))
        #expect(watch.slotsToAsk(at: start + .milliseconds(201)) == [1], "busy again, asked again")
    }

    @Test("a channel that sent is asked until a reply could have come: three round trips, at least 50 ms")
    func sentChannelsWaitForTheReply() {
        var watch = InputWatch()
        watch.noteSent(slot: 3, at: start)
        #expect(watch.slotsToAsk(at: start + .milliseconds(45)) == [3])
        #expect(watch.slotsToAsk(at: start + .milliseconds(60)).isEmpty, "loopback: 50 ms is plenty")

        // A 100 ms link: the reply to a request comes after 100 ms or more.
        var far = InputWatch()
        far.noteRoundTrip(.milliseconds(100))
        far.noteSent(slot: 3, at: start)
        #expect(far.slotsToAsk(at: start + .milliseconds(250)) == [3])
        #expect(far.slotsToAsk(at: start + .milliseconds(310)).isEmpty)
        // A reply's arrival does not cut short the wait for replies to later requests.
        far.noteSent(slot: 4, at: start)
        far.noteReceived(slot: 4, at: start + .milliseconds(10))
        #expect(far.slotsToAsk(at: start + .milliseconds(250)).contains(4))
    }

    @Test("round-trip samples are smoothed, and an open slowed by the target's connect is clamped")
    func roundTripSmoothing() {
        var watch = InputWatch()
        watch.noteRoundTrip(.milliseconds(20))
        #expect(watch.replyWait == .milliseconds(60))
        watch.noteRoundTrip(.seconds(10))  // clamped to 4 x 20 ms
        #expect(watch.replyWait == .nanoseconds((20_000_000 * 7 + 80_000_000) / 8 * 3))
        #expect(watch.replyWait < .milliseconds(100))
    }

    @Test("a forgotten slot is not asked (its channel is gone)")
    func forget() {
        var watch = InputWatch()
        watch.noteSent(slot: 7, at: start)
        watch.forget(slot: 7)
        #expect(watch.slotsToAsk(at: start).isEmpty)
    }

    @Test("a burst the asked channels took whole needs only the backstop sweep")
    func accountedBurst() {
        var watch = InputWatch()
        watch.framingPerPacket = 14 + 19 + 32  // hmac-sha2-256
        // A 64-byte reply arrives as about 128 bytes on the wire.
        #expect(watch.sweep(received: 128, delivered: 64, packets: 1) == .backstop)
        #expect(watch.sweep(received: 64, delivered: 64, packets: 1) == .backstop)
        // Bulk: 32 KiB packets, each with its framing, two per read.
        #expect(watch.sweep(received: 4 * 32_830, delivered: 4 * 32_768, packets: 8) == .backstop)
    }

    @Test("a small message beside a reply, or any bytes with nothing delivered, are swept for soon")
    func smallExtraMessage() {
        var watch = InputWatch()
        watch.framingPerPacket = 14 + 19 + 32
        // The reply (128 bytes) plus a 1-byte push or an EOF for another channel (64 bytes).
        #expect(watch.sweep(received: 128 + 64, delivered: 64, packets: 1) == .soon)
        // Nothing delivered at all: a message for a channel nobody asked.
        #expect(watch.sweep(received: 64, delivered: 0, packets: 0) == .soon)
        // ... unless something else explains it: the answer to a channel open.
        #expect(watch.sweep(received: 64, delivered: 0, packets: 1) == .backstop)
    }

    @Test("bytes the asked channels did not take mean data for another channel: sweep now")
    func unaccountedBurst() {
        let watch = InputWatch()
        #expect(watch.sweep(received: 2_000, delivered: 64, packets: 1) == .now)
        #expect(watch.sweep(received: 40_000, delivered: 0, packets: 0) == .now)
    }

    @Test("MAC lengths of the algorithms libssh2 names")
    func macLengths() {
        #expect(InputWatch.macLength("hmac-sha2-256") == 32)
        #expect(InputWatch.macLength("hmac-sha2-512-etm@openssh.com") == 64)
        #expect(InputWatch.macLength("hmac-sha1") == 20)
        #expect(InputWatch.macLength("umac-64@openssh.com") == nil)
    }
}
