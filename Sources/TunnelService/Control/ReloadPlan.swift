import TunnelConfig

/// What a reload does, host by host: the hosts whose settings did not change keep running untouched (their
/// session and open connections too); new ones come up; gone ones go down; changed ones restart. A host whose only
/// change is its `LocalForward`/`DynamicForward` lines keeps its session and the open connections of the forwards
/// that stayed: only the forwards that went are closed and the new ones bound (`forwardsChanged`). Pure.
public struct ReloadPlan: Equatable, Sendable {
    public var unchanged: [String] = []
    public var added: [String] = []
    public var removed: [String] = []
    public var changed: [String] = []
    /// Hosts that stay up, with the listening forwards to close and to open, in the file's order.
    public var forwardsChanged: [ForwardChanges] = []

    /// The listening forwards one host gains and loses. Removed specs are the running ones (as they were bound),
    /// added specs the new file's.
    public struct ForwardChanges: Equatable, Sendable {
        public var host: String
        public var addedLocal: [ForwardSpec] = []
        public var removedLocal: [ForwardSpec] = []
        public var addedDynamic: [DynamicForwardSpec] = []
        public var removedDynamic: [DynamicForwardSpec] = []
        public var addedRemote: [RemoteForwardSpec] = []
        public var removedRemote: [RemoteForwardSpec] = []

        /// "-localhost:1080 -> socks, +localhost:9000 -> db:5432": what goes, then what comes.
        public var summary: String {
            let gone = removedLocal.map { "-\($0)" } + removedDynamic.map { "-\($0)" } + removedRemote.map { "-remote \($0)" }
            let new = addedLocal.map { "+\($0)" } + addedDynamic.map { "+\($0)" } + addedRemote.map { "+remote \($0)" }
            return (gone + new).joined(separator: ", ")
        }
    }

    public init(running: [HostConfig], wanted: [HostConfig]) {
        let before = Dictionary(running.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Set(wanted.map(\.name))
        for host in wanted {
            guard let old = before[host.name] else { added.append(host.name); continue }
            if Self.sameSettings(old, host) {
                unchanged.append(host.name)
            } else if let forwards = Self.forwardChanges(from: old, to: host) {
                forwardsChanged.append(forwards)
            } else {
                changed.append(host.name)
            }
        }
        removed = running.map(\.name).filter { !after.contains($0) }
    }

    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty && forwardsChanged.isEmpty }

    /// The forward changes when forwards are all that differ between `old` and `new` (nil otherwise: any other
    /// setting restarts the host).
    static func forwardChanges(from old: HostConfig, to new: HostConfig) -> ForwardChanges? {
        var a = withoutLocations(old), b = withoutLocations(new)
        a.localForwards = []; a.dynamicForwards = []; a.remoteForwards = []
        b.localForwards = []; b.dynamicForwards = []; b.remoteForwards = []
        guard a == b else { return nil }
        let nowhere = SourceLocation(file: "", line: 0)
        let local = difference(old.localForwards, new.localForwards) { var spec = $0; spec.location = nowhere; return spec }
        let dynamic = difference(old.dynamicForwards, new.dynamicForwards) { var spec = $0; spec.location = nowhere; return spec }
        let remote = difference(old.remoteForwards, new.remoteForwards) { var spec = $0; spec.location = nowhere; return spec }
        return ForwardChanges(host: new.name, addedLocal: local.added, removedLocal: local.removed,
                              addedDynamic: dynamic.added, removedDynamic: dynamic.removed,
                              addedRemote: remote.added, removedRemote: remote.removed)
    }

    /// What is in `new` and not in `old` and the reverse, as multisets, compared as `key` makes them (where in the
    /// file a line is must not count). Each keeps its list's order.
    static func difference<T>(_ old: [T], _ new: [T], key: (T) -> T) -> (added: [T], removed: [T]) where T: Hashable {
        var remaining: [T: Int] = [:]
        for spec in new { remaining[key(spec), default: 0] += 1 }
        var removed: [T] = []
        for spec in old {
            if let count = remaining[key(spec)], count > 0 { remaining[key(spec)] = count - 1 } else { removed.append(spec) }
        }
        var stayed: [T: Int] = [:]
        for spec in old { stayed[key(spec), default: 0] += 1 }
        for spec in removed { stayed[key(spec), default: 0] -= 1 }
        var added: [T] = []
        for spec in new {
            if let count = stayed[key(spec)], count > 0 { stayed[key(spec)] = count - 1 } else { added.append(spec) }
        }
        return (added, removed)
    }

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
        for kind in host.algorithmLists.keys { host.algorithmLists[kind]?.location = nil }
        // [ProxyJump] Each hop is a HostConfig with locations of its own, and a chain's problem has one too.
        host.jumpChain = host.jumpChain.map(withoutLocations)
        host.jumpChainProblem?.location = nil
        return host
    }

    /// One line per change, for the reply and the log: "db: added", "web: restarted (settings changed)".
    public var lines: [String] {
        added.map { "\($0): added" } + removed.map { "\($0): removed" }
            + changed.map { "\($0): restarted (settings changed)" }
            + forwardsChanged.map { "\($0.host): forwards changed, session kept (\($0.summary))" }
            + unchanged.map { "\($0): unchanged" }
    }
}
