// The targets behind the forwards: C-speed source/sink and echo servers, so the measurement is of the forwarder,
// not of the test tool. One thread per connection: blocking recv/send is the cheapest server there is, and idle
// connections cost a sleeping thread each, nothing on the CPU.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Accepts connections; on each, sends `bytes` from a constant 1 MiB buffer ("download") or reads until EOF
/// and answers with the count ("upload"), depending on the first byte the client sends: "D" or "U".
final class BulkServer: Sendable {
    let port: Int
    private let listener: Listener
    private let bytes: Int

    init(bytes: Int) throws {
        self.bytes = bytes
        listener = try Listener()
        port = listener.port
        let listener = self.listener
        startThread("bulk accept") { [bytes] in
            while let client = listener.accept() {
                startThread("bulk \(client)") { BulkServer.serve(client, bytes: bytes) }
            }
        }
    }

    func stop() { listener.shutDown() }

    /// A transfer that makes no progress for this long is dropped, so no thread waits forever.
    static let stallLimit = 60

    private static func serve(_ client: Int32, bytes: Int) {
        defer { close(client) }
        var limit = timeval(tv_sec: stallLimit, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var mode: UInt8 = 0
        guard recv(client, &mode, 1, 0) == 1 else { return }
        let chunk = [UInt8](repeating: 0x5A, count: 1 << 20)
        if mode == UInt8(ascii: "D") {
            var left = bytes
            while left > 0 {
                let n = chunk.withUnsafeBytes { send(client, $0.baseAddress, min(left, $0.count), Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                left -= n
            }
        } else {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var total = 0
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                total += n
            }
            let answer = Array("\(total)\n".utf8)
            _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }
}

/// Echoes every byte back as it arrives, until EOF. With a client that sends 64 bytes and waits for 64, this is
/// a 64-byte request/reply server. A connection silent for `idleLimit` seconds is dropped, so no thread waits
/// forever (the idle-connections case stays well inside it).
final class EchoServer: Sendable {
    static let idleLimit: Double = 900
    let port: Int
    private let listener: Listener
    private let accepted = Counter()

    /// Connections accepted so far (the idle case checks that every idle connection reached the server).
    var connectionsAccepted: Int { accepted.value }

    init() throws {
        listener = try Listener(backlog: 4096)
        port = listener.port
        let listener = self.listener
        let accepted = self.accepted
        startThread("echo accept") {
            while let client = listener.accept() {
                accepted.add(1)
                startThread("echo \(client)") { EchoServer.serve(client) }
            }
        }
    }

    func stop() { listener.shutDown() }

    private static func serve(_ client: Int32) {
        defer { close(client) }
        var limit = timeval(tv_sec: Int(idleLimit), tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            var offset = 0
            while offset < n {
                let sent = buffer.withUnsafeBytes { send(client, $0.baseAddress! + offset, n - offset, Int32(MSG_NOSIGNAL)) }
                if sent < 0 && errno == EINTR { continue }
                if sent <= 0 { return }
                offset += sent
            }
        }
    }
}

/// A thread-safe integer.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add(_ n: Int) { lock.withLock { count += n } }
}
