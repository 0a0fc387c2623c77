import Testing
@testable import TunnelEngine

/// The half-close and close rules of a forwarded connection, without sockets or SSH.
@Suite("ForwardFlow: half-close and close rules")
struct ForwardFlowTests {
    @Test("a fresh connection reads both sides and is not finished")
    func fresh() {
        let flow = ForwardFlow()
        #expect(flow.mayReadClient(pendingUpstream: false))
        #expect(!flow.mayReadClient(pendingUpstream: true), "at most one batch from the client is held")
        #expect(flow.mayReadServer)
        #expect(!flow.shouldSendEOF(pendingUpstream: false))
        #expect(!flow.shouldShutClientOutput)
        #expect(!flow.mustCheckServerClose)
        #expect(flow.ending(pendingUpstream: false) == nil)
    }

    @Test("the client's EOF is sent only after every byte before it, and stops client reads")
    func clientEOFAfterBytes() {
        var flow = ForwardFlow()
        flow.clientSentEOF()
        #expect(!flow.mayReadClient(pendingUpstream: false))
        #expect(!flow.shouldSendEOF(pendingUpstream: true))
        #expect(flow.shouldSendEOF(pendingUpstream: false))
        flow.eofSent()
        #expect(!flow.shouldSendEOF(pendingUpstream: false))
        #expect(flow.mayReadServer, "the reply still flows after the client's EOF")
        #expect(flow.ending(pendingUpstream: false) == nil)
    }

    @Test("the server's EOF shuts the client's output while the client may still send")
    func serverEOFFirst() {
        var flow = ForwardFlow()
        flow.serverSentEOF()
        #expect(!flow.mayReadServer)
        #expect(flow.shouldShutClientOutput)
        #expect(flow.mayReadClient(pendingUpstream: false), "the upload goes on after the server's EOF")
        #expect(flow.mustCheckServerClose, "a CLOSE after EOF would stall the upload: it must be looked for")
        flow.clientOutputShut()
        #expect(!flow.shouldShutClientOutput)
        #expect(flow.ending(pendingUpstream: false) == nil)
        #expect(flow.ending(pendingUpstream: false, serverClosedChannel: true) == .drainThenClose)
    }

    @Test("no shutdown of the client's output while its own EOF is still being delivered")
    func noShutdownWhileClientEOFPending() {
        var flow = ForwardFlow()
        flow.clientSentEOF()
        flow.serverSentEOF()
        // NIO turns both halves shut into a full close, which would drop what is still on its way up.
        #expect(!flow.shouldShutClientOutput)
        flow.eofSent()
        #expect(flow.shouldShutClientOutput)
        #expect(flow.ending(pendingUpstream: false) == .drainThenClose)
    }

    @Test("both EOFs: finished, and the client reads what it was sent before the close")
    func bothEOFs() {
        var flow = ForwardFlow()
        flow.serverSentEOF()
        flow.clientOutputShut()
        flow.clientSentEOF()
        flow.eofSent()
        #expect(flow.ending(pendingUpstream: false) == .drainThenClose)
        #expect(!flow.mustCheckServerClose)
    }

    @Test("a client that closes with bytes pending: deliver them and EOF, then abort")
    func clientClosedWithPendingBytes() {
        var flow = ForwardFlow()
        flow.clientClosed()
        #expect(flow.owesServer(pendingUpstream: true, channelOpen: true))
        #expect(flow.owesServer(pendingUpstream: false, channelOpen: true), "EOF itself is still owed")
        #expect(!flow.mayReadServer, "nothing can reach a closed client")
        #expect(!flow.shouldShutClientOutput)
        #expect(flow.ending(pendingUpstream: true) == nil)
        #expect(flow.shouldSendEOF(pendingUpstream: false))
        flow.eofSent()
        #expect(flow.ending(pendingUpstream: false) == .abort)
    }

    @Test("a client that closes before its channel is open and sent nothing owes nothing")
    func clientClosedBeforeOpen() {
        var flow = ForwardFlow()
        flow.clientClosed()
        #expect(!flow.owesServer(pendingUpstream: false, channelOpen: false))
        #expect(flow.owesServer(pendingUpstream: true, channelOpen: false))
    }

    @Test("events that come twice change nothing")
    func idempotentEvents() {
        var flow = ForwardFlow()
        flow.serverSentEOF()
        flow.clientOutputShut()
        flow.serverSentEOF()
        #expect(flow.downstream == .clientOutputShut)
        flow.eofSent()
        flow.clientSentEOF()
        #expect(flow.upstream == .eofSent)
    }
}
