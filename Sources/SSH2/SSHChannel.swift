import CLibSSH2

/// One SSH channel (RFC 4254). It holds its session strongly, so the session (and libssh2's channel list) outlives it;
/// once the session is invalidated every call throws instead of touching a dead connection.
/// Same threading rule as the session: one owner thread.
public final class SSHChannel {
    private var raw: OpaquePointer?
    public let session: SSHSession

    init(raw: OpaquePointer, session: SSHSession) {
        self.raw = raw
        self.session = session
    }

    deinit {
        // Best effort: a channel dropped without `free()` is freed here; if libssh2 needs another round trip
        // (EAGAIN), session_free finishes it once the transport has ended.
        if let raw { _ = libssh2_channel_free(raw) }
    }

    public enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        /// The server sent EOF or closed the channel: no more data will come.
        case endOfStream
    }

    /// Read what the server sent on this channel. Reading also lets libssh2 widen the window, which is how the
    /// server learns it may send more: not reading is the backpressure.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SSH2Error) -> ReadResult {
        let raw = try usable()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return .wouldBlock }
        let n = tunnel_ssh2_channel_read(raw, base.assumingMemoryBound(to: CChar.self), buffer.count)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .endOfStream }
        if n == Int(LIBSSH2_ERROR_EAGAIN) { return .wouldBlock }
        throw session.lastError(Int32(truncatingIfNeeded: n), operation: "read from the channel")
    }

    /// Write as much as the peer's window allows. Returns the count written, or nil when the window is full or the
    /// transport is busy (call again after more bytes have moved).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(SSH2Error) -> Int? {
        let raw = try usable()
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        let n = tunnel_ssh2_channel_write(raw, base.assumingMemoryBound(to: CChar.self), bytes.count)
        if n >= 0 { return n }
        if n == Int(LIBSSH2_ERROR_EAGAIN) { return nil }
        throw session.lastError(Int32(truncatingIfNeeded: n), operation: "write to the channel")
    }

    /// Half-close: tell the server we will send no more (the local client shut down its write side).
    public func sendEOF() throws(SSH2Error) -> SSHStep<Void> {
        let raw = try usable()
        let rc = libssh2_channel_send_eof(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw session.lastError(rc, operation: "send EOF on the channel") }
        return .done(())
    }

    /// How many bytes the server's window lets us send now (O(1): a counter libssh2 keeps).
    public var writeWindow: Int {
        guard let raw, !session.isInvalidated else { return 0 }
        return Int(libssh2_channel_window_write_ex(raw, nil))
    }

    /// libssh2's receive window for channels it opens with its defaults (2 MiB in 1.10).
    public static let defaultReceiveWindow = Int(tunnel_ssh2_channel_window_default())

    /// How many more bytes the server may send on this channel before we grant more, counting what has arrived and
    /// is not read yet (O(1): libssh2 1.10's counter, which drops as data is read, not as it arrives).
    public var receiveWindow: Int {
        guard let raw, !session.isInvalidated else { return 0 }
        return Int(libssh2_channel_window_read_ex(raw, nil, nil))
    }

    /// Let the server send `bytes` more than it may now (SSH_MSG_CHANNEL_WINDOW_ADJUST, RFC 4254 5.2), beyond what
    /// libssh2's read path grants by itself (it only tops the window up to the size the channel was opened with).
    /// `.wouldBlock` only while keys are re-exchanged: then libssh2 holds this adjust half-sent, and the caller must
    /// repeat this call with the same amount before anything else reads or adjusts this channel (libssh2 finishes
    /// a half-sent adjust with whatever amount the next caller names, and would count a wrong window).
    public func grantReceiveWindow(_ bytes: Int) throws(SSH2Error) -> SSHStep<Void> {
        let raw = try usable()
        var window: UInt32 = 0
        let rc = libssh2_channel_receive_window_adjust2(raw, UInt(clamping: bytes), 1, &window)
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw session.lastError(rc, operation: "widen the channel's receive window") }
        return .done(())
    }

    /// After end of stream: whether the server has closed the channel (SSH_MSG_CHANNEL_CLOSE), as opposed to only
    /// sending EOF. libssh2's read reports both as end of stream; after a close the server discards anything we
    /// send and never widens the window again, so the caller must stop sending.
    public func remoteClosed() throws(SSH2Error) -> Bool {
        let raw = try usable()
        let rc = libssh2_channel_wait_closed(raw)
        if rc == 0 { return true }
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        throw session.lastError(rc, operation: "check whether the server closed the channel")
    }

    /// Send a request the server must answer, on a `session` channel kept open for it: a keepalive whose reply
    /// libssh2 takes out of its packet list (unlike the reply to a want-reply global request, which it keeps forever;
    /// see design notes). It is an `env` request, which libssh2 can repeat on one channel; servers refuse names they
    /// do not accept (OpenSSH: anything outside AcceptEnv) and either answer proves the link alive.
    /// Repeat after `.wouldBlock` until `.done`; `.done(true)` if the server accepted, `.done(false)` if it refused.
    public func keepaliveRequest() throws(SSH2Error) -> SSHStep<Bool> {
        let raw = try usable()
        let name = "TUNNEL_KEEPALIVE", value = "1"
        let rc = libssh2_channel_setenv_ex(raw, name, UInt32(name.utf8.count), value, UInt32(value.utf8.count))
        if rc == 0 { return .done(true) }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED { return .done(false) }
        throw session.lastError(rc, operation: "send a keepalive")
    }

    /// Close and release the channel. Repeat after `.wouldBlock`; after `.done` the channel is unusable.
    public func free() -> SSHStep<Void> {
        guard let raw else { return .done(()) }
        let rc = libssh2_channel_free(raw)
        // With the transport gone (invalidated), an EAGAIN here cannot change: leave the remains to session_free,
        // which completes without waiting once the transport reads as ended.
        if rc == LIBSSH2_ERROR_EAGAIN && !session.isInvalidated { return .wouldBlock }
        self.raw = nil
        return .done(())
    }

    /// The libssh2 handle for `SSHChannelSet`'s scan; nil once freed.
    var handle: OpaquePointer? { raw }

    private func usable() throws(SSH2Error) -> OpaquePointer {
        try session.checkUsable()
        guard let raw else {
            throw SSH2Error(code: LIBSSH2_ERROR_CHANNEL_CLOSED, message: "the channel was freed", operation: "use the channel")
        }
        return raw
    }
}
