import Foundation

/// Who is listening on a TCP port, so "address already in use" can name the program instead of leaving the user to
/// guess. Linux only (reads /proc); elsewhere, and when /proc is not readable, the answer is nil.
enum PortOwner {
    struct Owner: Equatable {
        var pid: Int32
        var command: String
    }

    static func listener(onPort port: Int) -> Owner? {
        #if os(Linux)
        let inodes = listeningSocketInodes(port: port)
        guard !inodes.isEmpty else { return nil }
        guard let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for pidText in pids {
            guard let pid = Int32(pidText) else { continue }
            let fdDirectory = "/proc/\(pid)/fd"
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: fdDirectory) else { continue }
            for fd in fds {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(fd)"),
                      target.hasPrefix("socket:["), inodes.contains(String(target.dropFirst(8).dropLast())) else { continue }
                let command = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                return Owner(pid: pid, command: command)
            }
        }
        #endif
        return nil
    }

    /// Inodes of sockets in LISTEN state (st 0A) on `port`, from /proc/net/tcp and tcp6.
    private static func listeningSocketInodes(port: Int) -> Set<String> {
        var inodes = Set<String>()
        let portHex = String(format: ":%04X", port)
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
                guard fields.count > 9, fields[1].hasSuffix(portHex), fields[3] == "0A" else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        return inodes
    }
}
