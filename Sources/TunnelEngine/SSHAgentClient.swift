#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A key an ssh-agent holds: its public key in SSH wire form and the comment the agent keeps with it.
struct AgentIdentity: Equatable {
    var blob: [UInt8]
    var comment: String

    /// The key's algorithm name, the first string of the blob ("ssh-ed25519").
    var keyType: String {
        var reader = AgentWireReader(blob)
        return reader.string().map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }
}

/// Why the agent could not be used.
struct AgentError: Error, CustomStringConvertible {
    var description: String
}

/// Speaks the ssh-agent protocol (draft-miller-ssh-agent) over the agent's Unix socket: lists its keys and asks it
/// to sign. libssh2 1.10 has an agent API, but it sends through the session's send/receive callbacks, which tunnel
/// points at its in-memory transport; so the few messages needed are written here.
///
/// Blocking by design, bounded by `timeout` on every read and write: it runs only on the thread pool, inside an
/// authentication step (see `SessionAuthenticator`), never on the event loop.
final class SSHAgentClient {
    static let failure: UInt8 = 5
    static let requestIdentities: UInt8 = 11
    static let identitiesAnswer: UInt8 = 12
    static let signRequest: UInt8 = 13
    static let signResponse: UInt8 = 14
    /// Replies larger than this are taken as garbage, not allocated.
    static let maximumReply = 256 * 1024

    let path: String
    private let fd: Int32

    init(path: String, timeout: Double = 5) throws(AgentError) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw AgentError(description: "agent socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        #if canImport(Glibc)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw AgentError(description: "socket: \(String(cString: strerror(errno)))") }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: .init((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw AgentError(description: "cannot reach the agent at \(path): \(reason)")
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// The agent's keys, in the agent's order.
    func identities() throws(AgentError) -> [AgentIdentity] {
        var reader = try exchange(Self.requestIdentities, [], expecting: Self.identitiesAnswer, what: "list its keys")
        guard let count = reader.uint32() else { throw AgentError(description: "the agent's key list is cut short") }
        var keys: [AgentIdentity] = []
        for _ in 0..<count {
            guard let blob = reader.string(), let comment = reader.string() else {
                throw AgentError(description: "the agent's key list is cut short")
            }
            keys.append(AgentIdentity(blob: blob, comment: String(decoding: comment, as: UTF8.self)))
        }
        return keys
    }

    /// The agent's signature of `data` with `key`: the full blob (string algorithm, string signature).
    func sign(_ data: [UInt8], with key: [UInt8], flags: UInt32 = 0) throws(AgentError) -> [UInt8] {
        var payload: [UInt8] = []
        AgentWireReader.appendString(key, to: &payload)
        AgentWireReader.appendString(data, to: &payload)
        AgentWireReader.appendUInt32(flags, to: &payload)
        var reader = try exchange(Self.signRequest, payload, expecting: Self.signResponse, what: "sign")
        guard let signature = reader.string() else { throw AgentError(description: "the agent's signature is cut short") }
        return signature
    }

    private func exchange(_ type: UInt8, _ payload: [UInt8], expecting: UInt8, what: String) throws(AgentError) -> AgentWireReader {
        var message: [UInt8] = []
        AgentWireReader.appendUInt32(UInt32(payload.count + 1), to: &message)
        message.append(type)
        message += payload
        try write(message)
        let header = try read(4)
        let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        guard length >= 1, length <= Self.maximumReply else {
            throw AgentError(description: "the agent sent a reply of \(length) bytes")
        }
        let body = try read(length)
        if body[0] == Self.failure { throw AgentError(description: "the agent refused to \(what)") }
        guard body[0] == expecting else { throw AgentError(description: "the agent answered with message type \(body[0])") }
        return AgentWireReader(Array(body.dropFirst()))
    }

    private func write(_ bytes: [UInt8]) throws(AgentError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw AgentError(description: "writing to the agent: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }

    private func read(_ count: Int) throws(AgentError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + offset, count - offset, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw AgentError(description: "the agent closed the connection") }
            guard n > 0 else {
                let timedOut = errno == EAGAIN || errno == EWOULDBLOCK
                throw AgentError(description: timedOut ? "the agent did not answer in time" : "reading from the agent: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        return bytes
    }

    /// The bare signature from an agent's signature blob (string algorithm, string signature): what libssh2's
    /// sign callback returns (it writes the algorithm itself).
    static func bareSignature(_ blob: [UInt8]) -> [UInt8]? {
        var reader = AgentWireReader(blob)
        guard reader.string() != nil, let signature = reader.string() else { return nil }
        return signature
    }
}

/// Reads and writes the SSH wire types the agent protocol uses (uint32, string), bounds-checked.
struct AgentWireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func uint32() -> UInt32? {
        guard bytes.count - offset >= 4 else { return nil }
        let value = bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        offset += 4
        return value
    }

    mutating func string() -> [UInt8]? {
        guard let length = uint32(), bytes.count - offset >= Int(length) else { return nil }
        let value = Array(bytes[offset..<offset + Int(length)])
        offset += Int(length)
        return value
    }

    static func appendUInt32(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    static func appendString(_ value: [UInt8], to bytes: inout [UInt8]) {
        appendUInt32(UInt32(value.count), to: &bytes)
        bytes += value
    }
}
