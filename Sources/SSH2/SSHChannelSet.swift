import CLibSSH2

/// The open channels of one session, so that after bytes arrive from the server the owner can find the channels
/// with something to read instead of reading every channel.
///
/// libssh2 parses what the server sent only inside a channel call, and then queues each channel's data packets in
/// one list per session. `drain` runs that parsing once for a whole burst (a zero-length read, which copies
/// nothing); `hasInput` then asks one channel whether data is queued for it or it reached end of stream. Asking is
/// cheap in instructions but touches libssh2's channel structure, which for a channel idle for a while is a cache
/// miss (measured: about 0.1 µs each, so 100 µs per burst for 1,000 channels). The owner therefore asks only the
/// channels it has reason to (see TunnelEngine's `InputWatch`), and every channel now and then.
///
/// Slots are small integers the owner keeps its own per-channel state under; a removed slot is reused.
/// Same threading rule as the session: one owner thread.
public final class SSHChannelSet {
    private var handles: [OpaquePointer?] = []
    private var freeSlots: [Int] = []
    public private(set) var count = 0

    public init() {}

    /// Add an open channel; returns its slot.
    public func insert(_ channel: SSHChannel) -> Int {
        count += 1
        if let slot = freeSlots.popLast() {
            handles[slot] = channel.handle
            return slot
        }
        handles.append(channel.handle)
        return handles.count - 1
    }

    /// Forget a slot (before its channel is freed: the handle must not be used after that).
    public func remove(slot: Int) {
        guard slot < handles.count, handles[slot] != nil else { return }
        handles[slot] = nil
        freeSlots.append(slot)
        count -= 1
    }

    /// Let libssh2 parse every byte the server has sent so far: keepalive requests, key re-exchange and channel
    /// messages are handled inside this call. Throws only when the session's transport failed.
    ///
    /// `through` should be a channel that is never read for data (see `SSHSession.openIdleSession`): a channel
    /// whose own read left a window adjust half-sent (during a key re-exchange) would have that adjust finished
    /// with the size of this zero-length read, and libssh2's idea of the window would drift from the server's.
    /// Without one, the oldest channel of the set is used, and with no channel at all nothing is parsed.
    public func drain(session: SSHSession, through idle: SSHChannel? = nil) throws(SSH2Error) {
        try session.checkUsable()
        guard let handle = idle?.handle ?? handles.first(where: { $0 != nil }) ?? nil else { return }
        var scratch: CChar = 0
        // A zero-length read: libssh2 drains the transport into its packet list and copies nothing. It reports
        // "would block", or 0 when this one channel is at end of stream; real errors are transport failures.
        let rc = tunnel_ssh2_channel_read(handle, &scratch, 0)
        if rc < 0 && rc != Int(LIBSSH2_ERROR_EAGAIN) {
            let error = session.lastError(Int32(truncatingIfNeeded: rc), operation: "read from the server")
            if SSH2Error.transportCodes.contains(error.code) { throw error }
        }
    }

    /// Whether the channel in `slot` has data queued, or is at end of stream (it stays so until closed: its owner
    /// closes it soon, or must keep checking whether the server closed it). False for an empty slot.
    public func hasInput(slot: Int) -> Bool {
        guard slot < handles.count, let handle = handles[slot] else { return false }
        return Self.hasInput(handle)
    }

    /// Every occupied slot with input (the full sweep).
    public func forEachSlotWithInput(_ body: (Int) -> Void) {
        for slot in handles.indices {
            if let handle = handles[slot], Self.hasInput(handle) { body(slot) }
        }
    }

    /// Data queued for the channel, or end of stream: two walks of libssh2's (usually empty) packet list.
    private static func hasInput(_ handle: OpaquePointer) -> Bool {
        libssh2_poll_channel_read(handle, 0) > 0 || libssh2_channel_eof(handle) == 1
    }
}
