import NIOCore

/// A client's bytes and EOF that arrive before its `ForwardedConnection` exists (it waits for a session, or a
/// proxy client's open is still on its way), handed over in order once it does. NIO reads a half-closed socket to
/// its end even with autoRead off, so such input does arrive; bounded by the kernel's receive buffer, since nothing
/// else is read ahead. Shared by the handlers of forwarded and proxied clients.
struct ClientInputBeforePairing {
    private var bytes: ByteBuffer?
    private var eof = false

    mutating func hold(_ buffer: inout ByteBuffer) {
        if bytes == nil { bytes = buffer } else { bytes!.writeBuffer(&buffer) }
    }

    mutating func holdEOF() { eof = true }

    /// Give everything held to `forward`, bytes before EOF.
    mutating func release(to forward: ForwardedConnection) {
        if var held = bytes {
            bytes = nil
            forward.clientRead(&held)
            forward.clientReadComplete()
        }
        if eof { forward.clientSentEOF() }
    }
}
