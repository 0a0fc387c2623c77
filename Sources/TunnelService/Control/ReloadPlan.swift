import TunnelConfig

/// What a reload does, host by host: the hosts whose settings did not change keep running untouched (their
/// session and open connections too); new ones come up; gone ones go down; changed ones restart. Pure.
public struct ReloadPlan: Equatable, Sendable {
    public var unchanged: [String] = []
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [String] = []

    public init(running: [HostConfig], wanted: [HostConfig]) {
        let before = Dictionary(running.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Set(wanted.map(\.name))
        for host in wanted {
            guard let old = before[host.name] else { added.append(host.name); continue }
            if Self.sameSettings(old, host) { unchanged.append(host.name) } else { changed.append(host.name) }
        }
        removed = running.map(\.name).filter { !after.contains($0) }
    }

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }

    /// Equal apart from where in the file things were written: adding a line above a Host block moves its line
    /// numbers, and must not restart it.
    static func sameSettings(_ a: HostConfig, _ b: HostConfig) -> Bool {
        withoutLocations(a) == withoutLocations(b)
    }

    static func withoutLocations(_ host: HostConfig) -> HostConfig {
        let nowhere = SourceLocation(file: "", line: 0)
        var host = host
        host.location = nil
        for index in host.localForwards.indices { host.localForwards[index].location = nowhere }
        for index in host.remoteForwards.indices { host.remoteForwards[index].location = nowhere }
        for index in host.dynamicForwards.indices { host.dynamicForwards[index].location = nowhere }
        for index in host.problems.indices { host.problems[index].location = nil }
        return host
    }

    /// One line per change, for the reply and the log: "db: added", "web: restarted (settings changed)".
    public var lines: [String] {
        added.map { "\($0): added" } + removed.map { "\($0): removed" }
            + changed.map { "\($0): restarted (settings changed)" } + unchanged.map { "\($0): unchanged" }
    }
}
