// One checked exchange through the tunnel: a payload of random bytes out to the echo server and the same bytes
// back, sent and received at once with poll(2) (a blocking "send all, then read" would deadlock on any payload
// larger than what the path buffers). Every byte that comes back is compared with what was sent, so a byte lost,
// duplicated, reordered or changed anywhere on the way (client -> tunnel -> SSH channel -> sshd -> echo and back)
// shows as corrupt, and an early end as "closed".
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How one exchange ended.
enum ExchangeOutcome: Equatable {
    /// Every byte came back, in order and unchanged, then the connection was closed by us.
    case verified(bytes: Int)
    /// A byte came back that was not the one sent (offset of the first wrong one).
    case corrupt(offset: Int)
    /// The connection ended after `received` of `expected` bytes, by a reset or error (`reset`) or by a plain EOF:
    /// allowed only while faults are injected, and never counted as success. (A plain EOF is what a client reading
    /// "until the end" would take for success: the tunnel should reset a connection it cuts short.)
    case closed(received: Int, expected: Int, reset: Bool)
    /// Nothing moved either way for the stall limit: the connection hangs.
    case stuck(received: Int, expected: Int)
    /// The connection (or its SOCKS5 handshake) could not be made.
    case connectFailed(String)
}

/// Where an exchange goes: through a LocalForward to the echo server, or through the SOCKS5 proxy to it.
enum ExchangeRoute: CustomStringConvertible {
    case forward(port: Int)
    case socks5(proxyPort: Int, targetPort: Int)

    var description: String {
        switch self {
        case .forward(let port): return "LocalForward :\(port)"
        case .socks5(let proxy, let target): return "SOCKS5 :\(proxy) -> :\(target)"
        }
    }

    /// A connected socket at the start of the path (the SOCKS5 handshake done), with blocking timeouts of
    /// `timeout` seconds.
    func connect(timeout: Double) throws -> BlockingSocket {
        switch self {
        case .forward(let port):
            return try BlockingSocket.connect(port: port, timeout: timeout)
        case .socks5(let proxyPort, let targetPort):
            let socket = try BlockingSocket.connect(port: proxyPort, timeout: timeout)
            do {
                try SOCKS5Client.connect(socket, toLoopbackPort: targetPort)
            } catch {
                socket.close()
                throw error
            }
            return socket
        }
    }
}

/// Random bytes shared by all exchanges of one worker: each exchange sends a slice at a random offset.
struct Payload {
    let bytes: [UInt8]

    init(size: Int, seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        var bytes = [UInt8](repeating: 0, count: size)
        var index = 0
        while index < size {
            var word = generator.next()
            for _ in 0..<8 where index < size {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        self.bytes = bytes
    }
}

/// A small fast seeded generator, so a failing run can be repeated with the same sizes and bytes.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Exchange {
    /// Sends `payload.bytes[offset ..< offset + count]` on `socket` while reading the echo, comparing each byte.
    /// `stallLimit`: seconds without progress either way after which the exchange counts as stuck.
    static func run(on socket: BlockingSocket, payload: Payload, offset: Int, count: Int, stallLimit: Double) -> ExchangeOutcome {
        let flags = fcntl(socket.fd, F_GETFL)
        _ = fcntl(socket.fd, F_SETFL, flags | O_NONBLOCK)
        var sent = 0
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var lastProgress = monotonicNanoseconds()
        let stallNanoseconds = UInt64(stallLimit * 1e9)
        return payload.bytes.withUnsafeBytes { outgoing -> ExchangeOutcome in
            let base = outgoing.baseAddress! + offset
            while received < count {
                var pollFD = pollfd(fd: socket.fd, events: Int16(POLLIN) | (sent < count ? Int16(POLLOUT) : 0), revents: 0)
                let ready = poll(&pollFD, 1, 200)
                if ready < 0 && errno != EINTR { return .closed(received: received, expected: count, reset: true) }
                var moved = false
                if sent < count && pollFD.revents & Int16(POLLOUT) != 0 {
                    let n = send(socket.fd, base + sent, min(count - sent, 64 * 1024), Int32(MSG_NOSIGNAL))
                    if n > 0 { sent += n; moved = true }
                    else if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                        return .closed(received: received, expected: count, reset: true)
                    }
                }
                if pollFD.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                    let n = buffer.withUnsafeMutableBytes { recv(socket.fd, $0.baseAddress, min($0.count, count - received), 0) }
                    if n == 0 { return .closed(received: received, expected: count, reset: false) }
                    if n < 0 {
                        if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return .closed(received: received, expected: count, reset: true) }
                    } else {
                        let same = buffer.withUnsafeBytes { memcmp($0.baseAddress!, base + received, n) == 0 }
                        if !same {
                            let wrong = (0..<n).first { buffer[$0] != outgoing[offset + received + $0] } ?? 0
                            return .corrupt(offset: received + wrong)
                        }
                        received += n
                        moved = true
                    }
                }
                let now = monotonicNanoseconds()
                if moved { lastProgress = now } else if now - lastProgress > stallNanoseconds {
                    return .stuck(received: received, expected: count)
                }
            }
            return .verified(bytes: count)
        }
    }
}
