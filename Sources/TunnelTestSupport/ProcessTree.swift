// Reading the process tree from /proc: sshd serves each connection in a child that calls setsid(), so a
// process-group signal misses them; the fixture signals the listener and every descendant instead.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ProcessTree {
    public struct Entry: Sendable, Equatable {
        public var pid: pid_t
        public var parent: pid_t
        /// The state letter of /proc/PID/stat: R, S, D, T (stopped), Z (zombie), ...
        public var state: Character
        public var name: String
    }

    /// One entry per process in /proc right now.
    public static func snapshot() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in
            guard let pid = pid_t(name) else { return nil }
            return entry(pid)
        }
    }

    /// The entry of `pid`, or nil if there is no such process.
    public static func entry(_ pid: pid_t) -> Entry? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
              let text = String(data: data, encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        let name = String(text[text.index(after: open)..<close])
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        return Entry(pid: pid, parent: parent, state: state, name: name)
    }

    /// All descendants of `pid` (children, their children, ...), zombies excluded.
    public static func descendants(of pid: pid_t) -> [pid_t] {
        let all = snapshot()
        var children: [pid_t: [pid_t]] = [:]
        for e in all where e.state != "Z" { children[e.parent, default: []].append(e.pid) }
        var result: [pid_t] = []
        var queue = children[pid] ?? []
        while let next = queue.popLast() {
            result.append(next)
            queue.append(contentsOf: children[next] ?? [])
        }
        return result
    }

    /// Whether `pid` exists and is not a zombie.
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard let e = entry(pid) else { return false }
        return e.state != "Z"
    }
}
