import CLibSSH2

/// The open channels of one session, so that after bytes arrive from the server the owner can step only the
/// channels that have something to read, instead of reading every channel.
///
/// libssh2 parses what the server sent only inside a channel call, and then queues each channel's data packets in
/// one list per session. `drainAndScan` runs that parsing once for the whole burst (a zero-length read, which drains
/// the transport and copies nothing), then asks each channel two O(queued packets) questions: is data queued for it,
/// has it reached end of stream. With nothing queued that is two pointer checks per channel, done without touching
/// any Swift object, so a thousand idle channels cost a few microseconds per burst.
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

    /// Let libssh2 parse every byte the server has sent so far, then call `ready` for each slot with queued data
    /// or at end of stream (a channel stays reported while it is at end of stream: its owner closes it soon, or
    /// must keep checking whether the server closed it). Throws only when the session's transport failed.
    public func drainAndScan(session: SSHSession, _ ready: (Int) -> Void) throws(SSH2Error) {
        try session.checkUsable()
        guard let any = handles.first(where: { $0 != nil }) ?? nil else { return }
        var scratch: CChar = 0
        // A zero-length read: libssh2 drains the transport into its packet list and copies nothing. It reports
        // "would block", or 0 when this one channel is at end of stream; real errors are transport failures.
        let rc = tunnel_ssh2_channel_read(any, &scratch, 0)
        if rc < 0 && rc != Int(LIBSSH2_ERROR_EAGAIN) {
            let error = session.lastError(Int32(truncatingIfNeeded: rc), operation: "read from the server")
            if SSH2Error.transportCodes.contains(error.code) { throw error }
        }
        for slot in handles.indices {
            guard let handle = handles[slot] else { continue }
            if libssh2_poll_channel_read(handle, 0) > 0 || libssh2_channel_eof(handle) == 1 {
                ready(slot)
            }
        }
    }
}
