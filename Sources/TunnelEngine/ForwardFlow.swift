/// The half-close and close rules of one forwarded connection, as plain values with no I/O, so every rule has a
/// unit test. As in OpenSSH's channels.c the two directions are separate halves with their own states; the
/// `ForwardedConnection` that owns one of these feeds it events and asks it what to do.
struct ForwardFlow: Equatable {
    /// Client to server.
    enum Upstream: Equatable {
        /// Reading the client.
        case open
        /// The client sent EOF; what it sent before is still on its way to the server.
        case clientEOF
        /// SSH EOF is out: nothing more goes up.
        case eofSent
    }

    /// Server to client.
    enum Downstream: Equatable {
        case open
        /// The server sent EOF (or closed the channel); the client's output is not shut yet.
        case serverEOF
        /// The client's socket has been shut for writing after the last byte reached it.
        case clientOutputShut
    }

    /// How a finished (or failed) pair is closed.
    enum CloseMode: Equatable {
        /// Both sides are finished: let the client read what is already written to it, then close (bounded).
        case drainThenClose
        /// Close now (session lost, stop, error): pending writes are dropped and a blocked client is released.
        case abort
    }

    private(set) var upstream = Upstream.open
    private(set) var downstream = Downstream.open
    /// The client's socket is fully closed: nothing more can be written to it.
    private(set) var clientGone = false

    // MARK: Events

    mutating func clientSentEOF() {
        if upstream == .open { upstream = .clientEOF }
    }

    /// A full close of the client's socket. NIO also reports a client's EOF this way once we have shut its other
    /// half, so what it sent before still has to reach the server (as OpenSSH does): it counts as an EOF too.
    mutating func clientClosed() {
        clientGone = true
        clientSentEOF()
    }

    mutating func eofSent() { upstream = .eofSent }

    mutating func serverSentEOF() {
        if downstream == .open { downstream = .serverEOF }
    }

    mutating func clientOutputShut() { downstream = .clientOutputShut }

    // MARK: Decisions

    /// Read more from the client: only when the last batch has been handed over, so at most one batch per
    /// connection is ever held (the session's congestion is the caller's to add).
    func mayReadClient(pendingUpstream: Bool) -> Bool {
        upstream == .open && !pendingUpstream && !clientGone
    }

    /// Read more from the server for the client.
    var mayReadServer: Bool { downstream == .open && !clientGone }

    /// Send SSH EOF: the client's EOF, once every byte before it has been handed to the channel.
    func shouldSendEOF(pendingUpstream: Bool) -> Bool {
        upstream == .clientEOF && !pendingUpstream
    }

    /// Shut the client's output after the server's EOF. Not while the client's own EOF is still being delivered:
    /// NIO turns "both halves shut" into a full close, which would drop bytes still on their way to the server.
    var shouldShutClientOutput: Bool {
        downstream == .serverEOF && !clientGone && upstream != .clientEOF
    }

    /// Whether the channel might have been closed by the server (not just EOF): then the server discards what we
    /// send and never widens the window again, so an upload would stall for good. Worth asking libssh2 only here.
    var mustCheckServerClose: Bool {
        downstream != .open && upstream != .eofSent && !clientGone
    }

    /// Whether the pair is finished, and how to close it. `serverClosedChannel`: the answer to `mustCheckServerClose`.
    func ending(pendingUpstream: Bool, serverClosedChannel: Bool = false) -> CloseMode? {
        if clientGone {
            // Nothing can reach the client any more; finish once what it sent has been delivered with EOF.
            return !pendingUpstream && upstream == .eofSent ? .abort : nil
        }
        if downstream != .open && upstream == .eofSent { return .drainThenClose }
        if serverClosedChannel { return .drainThenClose }
        return nil
    }

    /// When the client closes: whether anything it sent still has to reach the server (else close at once).
    func owesServer(pendingUpstream: Bool, channelOpen: Bool) -> Bool {
        pendingUpstream || (channelOpen && upstream != .eofSent)
    }
}
