// A throwaway Linux network namespace for tests that need a server nobody can reach directly (ProxyJump: the
// host behind the jump host). Its only interface is its own loopback; the test reaches inside through a
// `NamespaceBridge`, nothing else does. Needs root (CAP_SYS_ADMIN) and `ip` from iproute2.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class NetworkNamespace: @unchecked Sendable {
    /// "tunnel-test-PID-N": `ip netns exec NAME ...` runs a program inside.
    public let name: String
    public static let ipPath = "/usr/sbin/ip"
    private let deleted = Locked(false)
    private static let counter = Locked(0)

    /// Why namespaces cannot be made here (not root, no `ip`, no permission), or nil when they can: for XCTSkip.
    public static let unavailableReason: String? = {
        if geteuid() != 0 { return "network namespaces need root" }
        if !FileManager.default.isExecutableFile(atPath: ipPath) { return "\(ipPath) (iproute2) is not installed" }
        do {
            let probe = try NetworkNamespace()
            probe.delete()
            return nil
        } catch {
            return "cannot make a network namespace here: \(error)"
        }
    }()

    public init() throws {
        let n = Self.counter.withLock { value -> Int in
            value += 1
            return value
        }
        name = "tunnel-test-\(getpid())-\(n)"
        try ProcessRunner(Self.ipPath, ["netns", "add", name]).runChecked(timeout: 30)
        do {
            try ProcessRunner(Self.ipPath, ["netns", "exec", name, Self.ipPath, "link", "set", "lo", "up"]).runChecked(timeout: 30)
        } catch {
            delete()
            throw error
        }
    }

    deinit { delete() }

    /// Removes the namespace (its servers must be stopped first). Idempotent.
    public func delete() {
        let first = deleted.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        _ = try? ProcessRunner(Self.ipPath, ["netns", "delete", name]).run(timeout: 30)
    }

    /// The arguments that run `program args...` inside: `ip netns exec NAME program args...` (ip replaces itself
    /// with the program, so the pid is the program's).
    public func command(_ program: String, _ arguments: [String]) -> (String, [String]) {
        (Self.ipPath, ["netns", "exec", name, program] + arguments)
    }

    /// A TCP socket connected to `127.0.0.1:port` inside the namespace, made by this thread entering the
    /// namespace for the `socket()` call only (a socket belongs to the namespace it was made in). Blocking.
    func connectInside(port: Int) throws -> Int32 {
        guard let setns = symbol("setns", as: SetnsFn.self) else { throw TestSupportError("setns is not available") }
        let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard home >= 0 else { throw TestSupportError.errno("open /proc/thread-self/ns/net") }
        defer { close(home) }
        let inside = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard inside >= 0 else { throw TestSupportError.errno("open /run/netns/\(name)") }
        defer { close(inside) }
        guard setns(inside, Self.cloneNewNet) == 0 else { throw TestSupportError.errno("setns \(name)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        let socketErrno = errno
        guard setns(home, Self.cloneNewNet) == 0 else {
            // This thread would stay inside: nothing sensible can go on.
            fatalError("NetworkNamespace: cannot return to the test's network namespace: \(String(cString: strerror(errno)))")
        }
        guard fd >= 0 else { throw TestSupportError.errno("socket in \(name)", socketErrno) }
        let address = try SocketAddress(host: "127.0.0.1", port: port)
        guard address.withSockAddr({ Glibc.connect(fd, $0, $1) }) == 0 else {
            let e = TestSupportError.errno("connect 127.0.0.1:\(port) in \(name)")
            close(fd)
            throw e
        }
        return fd
    }

    private static let cloneNewNet: Int32 = 0x4000_0000
}

private typealias SetnsFn = @convention(c) (Int32, Int32) -> Int32

private func symbol<F>(_ name: String, as: F.Type) -> F? {
    guard let found = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
    return unsafeBitCast(found, to: F.self)
}

/// A port on 127.0.0.1 in the test's own namespace that leads to a port on 127.0.0.1 inside a
/// `NetworkNamespace`: each accepted connection gets its own connection inside, and two threads copy bytes
/// (EOF is passed on as a half-close). The test's way in to the first jump host, and nobody else's.
public final class NamespaceBridge: @unchecked Sendable {
    public let port: Int
    public let namespace: NetworkNamespace
    public let insidePort: Int
    private let listenFD: Int32
    private let wakeup: (read: Int32, write: Int32)
    private struct State {
        var open: Set<Int32> = []
        var threads = 0
        var stopped = false
    }
    private let state = Locked(State())

    public init(into namespace: NetworkNamespace, port insidePort: Int) throws {
        self.namespace = namespace
        self.insidePort = insidePort
        let address = try SocketAddress(host: "127.0.0.1", port: 0)
        let fd = try makeStreamSocket(family: AF_INET)
        guard address.withSockAddr({ bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
            let e = TestSupportError.errno("NamespaceBridge: bind/listen")
            close(fd)
            throw e
        }
        listenFD = fd
        port = try SocketAddress.local(of: fd).port
        wakeup = try makePipe(flags: O_CLOEXEC | O_NONBLOCK)
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "NamespaceBridge \(port)"
        state.withLock { $0.threads += 1 }
        thread.start()
    }

    deinit { stop() }

    /// Stops accepting and shuts every bridged connection down; waits (up to 5 s) for the threads. Idempotent.
    public func stop() {
        let first = state.withLock { s -> Bool in
            if s.stopped { return false }
            s.stopped = true
            for fd in s.open { shutdown(fd, Int32(SHUT_RDWR)) }
            return true
        }
        guard first else { return }
        var byte: UInt8 = 1
        _ = write(wakeup.write, &byte, 1)
        _ = state.wait(until: Date().addingTimeInterval(5)) { $0.threads == 0 }
        close(listenFD)
        close(wakeup.read)
        close(wakeup.write)
    }

    private func acceptLoop() {
        defer { state.withLock { $0.threads -= 1 } }
        while true {
            var fds = [pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeup.read, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, -1)
            if rc < 0 && errno == EINTR { continue }
            if rc < 0 || fds[1].revents != 0 { return }
            let outside = acceptCloexec(listenFD)
            if outside < 0 { continue }
            guard let inside = try? namespace.connectInside(port: insidePort) else {
                close(outside)  // nothing listens inside: the client sees the connection closed
                continue
            }
            let registered = state.withLock { s -> Bool in
                if s.stopped { return false }
                s.open.formUnion([outside, inside])
                s.threads += 2
                return true
            }
            guard registered else {
                close(outside)
                close(inside)
                return
            }
            let pair = Locked(2)  // the last copier to finish closes both sockets
            for (from, to) in [(outside, inside), (inside, outside)] {
                let copier = Thread { [self] in
                    Self.copy(from: from, to: to)
                    let last = pair.withLock { left -> Bool in
                        left -= 1
                        return left == 0
                    }
                    state.withLock { s in
                        if last {
                            s.open.subtract([outside, inside])
                            close(outside)
                            close(inside)
                        }
                        s.threads -= 1
                    }
                }
                copier.name = "NamespaceBridge copy \(from)->\(to)"
                copier.start()
            }
        }
    }

    /// Copy until EOF or an error, then pass the EOF on (or a reset as a full shutdown).
    private static func copy(from: Int32, to: Int32) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 {
                shutdown(to, Int32(count == 0 ? SHUT_WR : SHUT_RDWR))
                if count < 0 { shutdown(from, Int32(SHUT_RDWR)) }
                return
            }
            var sent = 0
            while sent < count {
                let n = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, count - sent) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    shutdown(from, Int32(SHUT_RDWR))
                    return
                }
                sent += n
            }
        }
    }
}
