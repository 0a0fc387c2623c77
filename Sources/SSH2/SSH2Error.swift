import CLibSSH2

/// A failed libssh2 call: the operation we attempted, libssh2's own code and message.
public struct SSH2Error: Error, Sendable, Equatable, CustomStringConvertible {
    /// libssh2's error code (negative, `LIBSSH2_ERROR_*`), or 0 for failures detected by this wrapper.
    public var code: Int32
    /// libssh2's message from `libssh2_session_last_error`, kept verbatim.
    public var message: String
    /// What we were doing, in plain words ("open a channel to db:5432").
    public var operation: String

    public init(code: Int32, message: String, operation: String) {
        self.code = code
        self.message = message
        self.operation = operation
    }

    public var kind: Kind { Kind(code: code) }

    /// Codes after which the session's transport (socket, crypto, packet framing) cannot be trusted any more.
    public static let transportCodes: Set<Int32> = [
        LIBSSH2_ERROR_SOCKET_NONE, LIBSSH2_ERROR_INVALID_MAC, LIBSSH2_ERROR_ALLOC, LIBSSH2_ERROR_DECRYPT,
        LIBSSH2_ERROR_ENCRYPT, LIBSSH2_ERROR_BAD_SOCKET, LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_SEND,
        LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_PROTO,
        LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE, LIBSSH2_ERROR_COMPRESS, LIBSSH2_ERROR_ZLIB,
        // A packet length out of bounds: the stream is corrupt from here on.
        LIBSSH2_ERROR_OUT_OF_BOUNDARY,
    ]

    /// libssh2's message, or a summary of the code when libssh2 gave none.
    public var detail: String { message.isEmpty ? kind.summary : message }

    public var description: String { "\(operation): \(detail)" }

    /// The codes callers branch on; everything else is `.other`.
    public enum Kind: Sendable, Equatable {
        case socketDisconnected, bannerExchange, keyExchange, authenticationFailed, publicKeyUnverified
        case keyFile, channelFailure, requestDenied, channelClosed, protocolError, timeout, other(Int32)

        init(code: Int32) {
            switch code {
            case LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_SEND:
                self = .socketDisconnected
            case LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND: self = .bannerExchange
            case LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE: self = .keyExchange
            case LIBSSH2_ERROR_AUTHENTICATION_FAILED: self = .authenticationFailed
            case LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED: self = .publicKeyUnverified
            case LIBSSH2_ERROR_FILE, LIBSSH2_ERROR_KEYFILE_AUTH_FAILED: self = .keyFile
            case LIBSSH2_ERROR_CHANNEL_FAILURE: self = .channelFailure
            case LIBSSH2_ERROR_REQUEST_DENIED, LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED: self = .requestDenied
            case LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT: self = .channelClosed
            case LIBSSH2_ERROR_PROTO: self = .protocolError
            case LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_SOCKET_TIMEOUT: self = .timeout
            default: self = .other(code)
            }
        }

        var summary: String {
            switch self {
            case .socketDisconnected: return "the connection to the server was lost"
            case .bannerExchange: return "the server did not send an SSH banner"
            case .keyExchange: return "key exchange failed"
            case .authenticationFailed: return "authentication failed"
            case .publicKeyUnverified: return "the server did not accept the key's signature"
            case .keyFile: return "the key file could not be used"
            case .channelFailure: return "the server refused to open the channel"
            case .requestDenied: return "the server denied the request"
            case .channelClosed: return "the channel is closed"
            case .protocolError: return "SSH protocol error"
            case .timeout: return "timed out"
            case .other(let code): return "libssh2 error \(code)"
            }
        }
    }
}
