import Foundation

/// systemd's readiness protocol (sd_notify(3)) spoken directly: one datagram per message to the Unix socket named
/// by `NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`). Written by hand because the protocol
/// is one sendto(2), and linking libsystemd for it would tie the binary to systemd's library on every platform.
public struct SystemdNotifier: Sendable {
    private let address: [UInt8]

    /// nil when not started by systemd with `Type=notify` (no `NOTIFY_SOCKET`).
    public init?(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let socket = environment["NOTIFY_SOCKET"], !socket.isEmpty else { return nil }
        var bytes = Array(socket.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract namespace: a leading NUL byte
        guard bytes.count < MemoryLayout.size(ofValue: sockaddr_un().sun_path) else { return nil }
        address = bytes
    }

    /// The watchdog interval systemd expects pings within (`WATCHDOG_USEC`), when set for this process.
    public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Double? {
        guard let text = environment["WATCHDOG_USEC"], let usec = Double(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"], let wanted = Int32(pid), wanted != getpid() { return nil }
        return usec / 1_000_000
    }

    /// Send "KEY=value" lines in one datagram. Failures are ignored: systemd not listening must not stop the tunnels.
    @discardableResult
    public func notify(_ message: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var sun = sockaddr_un()
        sun.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sun.sun_path) { path in
            for (index, byte) in address.enumerated() { path[index] = byte }
        }
        // An abstract name's length is exact (no terminating NUL counts); a path's may include the NUL.
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + address.count)
        let payload = Array(message.utf8)
        #if os(Linux)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        let sent = withUnsafePointer(to: &sun) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                sendto(fd, payload, payload.count, flags, address, length)
            }
        }
        return sent == payload.count
    }

    /// "RELOADING=1" with the CLOCK_MONOTONIC time systemd ≥ 253 asks for (`Type=notify-reload`).
    public static func reloadingMessage() -> String {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let usec = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        return "RELOADING=1\nMONOTONIC_USEC=\(usec)"
    }
}
