import CLibSSH2

/// A port the server listens on for us (`tcpip-forward`): each connection to it reaches us as a `forwarded-tcpip`
/// channel. libssh2 confirms those channels itself while it parses the server's packets (inside any call that
/// reads the transport) and queues them on this listener until `accept()` takes them; a `forwarded-tcpip` channel
/// for a port we have no listener for is refused by libssh2.
///
/// Holds its session strongly, like `SSHChannel`. It is never cancelled one by one: the session lives as long as its
/// forwards, and freeing the session cancels its listeners. Same threading rule as the session: one owner thread.
public final class SSHRemoteListener {
    private let raw: OpaquePointer
    public let session: SSHSession
    /// The port the server listens on: the one asked for, or the one it chose when asked for port 0.
    public let boundPort: Int

    init(raw: OpaquePointer, session: SSHSession, boundPort: Int) {
        self.raw = raw
        self.session = session
        self.boundPort = boundPort
    }

    /// The next queued connection, or nil when none is queued. libssh2 first reads whatever the transport holds
    /// (nothing, when the caller has just drained it), then takes the head of this listener's queue.
    public func accept() throws(SSH2Error) -> SSHChannel? {
        try session.checkUsable()
        if let channel = libssh2_channel_forward_accept(raw) { return SSHChannel(raw: channel, session: session) }
        // EAGAIN: nothing queued. CHANNEL_UNKNOWN ("Channel not found") is what 1.10 reports for an empty queue
        // when its transport read found no packet; a real transport failure surfaces in the session's next read.
        return nil
    }

    /// Ask the server to stop listening (`cancel-tcpip-forward`, no reply asked) and free this listener with the
    /// connections still queued on it. Repeat after `.wouldBlock`; once `.done` (or thrown) the listener is gone:
    /// nothing else may be called on it.
    public func cancel() throws(SSH2Error) -> SSHStep<Void> {
        try session.checkUsable()
        let rc = libssh2_channel_forward_cancel(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc < 0 { throw session.lastError(rc, operation: "cancel the remote forward on port \(boundPort)") }
        return .done(())
    }
}
