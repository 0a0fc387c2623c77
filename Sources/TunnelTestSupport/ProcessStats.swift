// A process's CPU time, memory and open descriptors, from /proc: for tests that assert "no busy loop" or "no
// growth", and for the benchmark's figures.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessStats {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// CPU time (user + system, all threads) used so far, in milliseconds. Resolution: one clock tick (10 ms at
    /// the usual 100 Hz).
    public static func cpuMilliseconds(_ pid: pid_t) throws -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else {
            throw TestSupportError("cannot read /proc/\(pid)/stat (did the process exit?)")
        }
        // After "pid (comm)": field 3 (state) is index 0, so utime (field 14) is index 11 and stime index 12.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw TestSupportError("unexpected /proc/\(pid)/stat: \(stat)")
        }
        return (user + system) / ticksPerSecond * 1000
    }

    /// Resident memory now (`VmRSS`), in KiB.
    public static func rssKiB(_ pid: pid_t) -> Int? { statusField("VmRSS:", pid) }

    /// The anonymous part of the resident memory now (`RssAnon`: heap, malloc arenas, thread stacks), in KiB. The
    /// rest of `VmRSS` is pages mapped from files (executable and libraries), which the program does not allocate.
    public static func anonymousRSSKiB(_ pid: pid_t) -> Int? { statusField("RssAnon:", pid) }

    /// Peak resident memory so far (`VmHWM`), in KiB.
    public static func peakRSSKiB(_ pid: pid_t) -> Int? { statusField("VmHWM:", pid) }

    /// Open file descriptors now.
    public static func openDescriptors(_ pid: pid_t) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }

    private static func statusField(_ name: String, _ pid: pid_t) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(name) {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}

/// Whether something holds the TCP port on 127.0.0.1: a bind attempt on it fails with EADDRINUSE. (Stronger than
/// "accepting": a listener that stays bound but stops accepting still holds the port.)
public func tcpPortIsHeld(_ port: Int, host: String = "127.0.0.1") -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var one: Int32 = 1
    // As a server would bind: SO_REUSEADDR ignores TIME_WAIT remains, so only a live socket counts.
    _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(host)
    address.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return rc != 0 && errno == EADDRINUSE
}
