// The misbehaving peers of the fault phases: clients that reset mid-transfer, connect and drop, or send garbage
// handshakes to the proxy; targets that reset mid-transfer or never accept; slow readers and writers.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Closes with a reset (SO_LINGER 0) instead of a FIN: what a crashed or killed peer looks like.
func resetAndClose(_ fd: Int32) {
    var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
    _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
    close(fd)
}

/// Runs `count` jobs on `threads` threads (job index passed in) and waits for all (the soak's fault clients, the
/// parallel case's downloads).
func runParallel(count: Int, threads: Int, _ job: @escaping @Sendable (Int) -> Void) {
    let tickets = Tickets()
    let done = DispatchGroup()
    for worker in 0..<threads {
        done.enter()
        startThread("fault \(worker)") {
            defer { done.leave() }
            while case let index = tickets.take(), index < count { job(index) }
        }
    }
    done.wait()
}

/// Hands out 0, 1, 2, ... to whichever thread asks next.
final class Tickets: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    func take() -> Int { lock.withLock { defer { next += 1 }; return next } }
}

/// A target that accepts, reads up to `readBeforeReset` bytes and then resets the connection.
final class ResettingServer: Sendable {
    let port: Int
    let accepted = Counter()
    private let listener: Listener

    init(readBeforeReset: Int) throws {
        listener = try Listener(backlog: 1024)
        port = listener.port
        let listener = self.listener
        let accepted = self.accepted
        startThread("reset accept") {
            while let client = listener.accept() {
                accepted.add(1)
                startThread("reset \(client)") {
                    var limit = timeval(tv_sec: 10, tv_usec: 0)
                    _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                    var buffer = [UInt8](repeating: 0, count: readBeforeReset)
                    var got = 0
                    while got < readBeforeReset {
                        let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, readBeforeReset - got, 0) }
                        if n <= 0 { break }
                        got += n
                    }
                    resetAndClose(client)
                }
            }
        }
    }

    func stop() { listener.shutDown() }
}

/// A target that listens and never calls accept. With a big backlog the kernel completes every connection (the
/// target "never answers"); with `backlog: 1` it completes two and drops the SYNs of the rest, so a connect to it
/// hangs in SYN retries for about two minutes (a blackholed host).
final class NeverAcceptingServer: Sendable {
    let port: Int
    private let listener: Listener

    init(backlog: Int32) throws {
        listener = try Listener(backlog: backlog)
        port = listener.port
    }

    func stop() { listener.shutDown() }
}

/// Proxy handshakes that are wrong or cut short, one of each kind in turn, with random bytes where it matters.
enum GarbageHandshake {
    static let kinds = 8

    static func bytes(kind: Int, random: inout SplitMix64) -> [UInt8] {
        func noise(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) } }
        switch kind % kinds {
        case 0: return noise(Int.random(in: 1...200, using: &random))                    // pure noise
        case 1: return [5]                                                                 // SOCKS5, cut after the version
        case 2: return [5, 3, 0]                                                           // SOCKS5, fewer methods than it says
        case 3: return [5, 1, 0, 5, 1, 0, 3, 200] + Array("short".utf8)                    // greeting + request with a cut name
        case 4: return [4, 1, 0, 80, 127, 0, 0, 1] + noise(40)                             // SOCKS4 with no NUL after the user id
        case 5: return Array("CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: ".utf8)                // HTTP, headers never end
        case 6: return Array("GARBAGE / HTTP/9.9\r\n\r\n".utf8)                            // not a method a proxy takes
        default: return Array("CONNECT ".utf8) + [UInt8](repeating: UInt8(ascii: "a"), count: 16 * 1024) + Array(" HTTP/1.1\r\n\r\n".utf8)  // oversized
        }
    }
}
