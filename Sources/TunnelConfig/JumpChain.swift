// Which hosts a `ProxyJump` host is reached through, each with its own settings, the way OpenSSH 9.x builds
// its chain. OpenSSH turns `ProxyJump h1,h2` for target T into `ssh -J h1 -W T h2`, and that into
// `ssh -l U1 -p P1 -W h2 h1` (seen with `ssh -v`): so
// - each hop is resolved through the same file by the name written in the entry (its Host blocks, wildcard
//   ones included, apply), with the entry's `user@` and `:port` overriding its User and Port (`-l`, `-p`);
// - a hop after the first is given the chain before it on the command line (`-J`), so its own ProxyJump is
//   ignored; the first hop has no `-J`, so its own ProxyJump from the file applies (and so on, recursively);
// - the target of each hop's `-W` is the next host's HostName and Port as that host resolves them.
// A hop's `name` is its entry as written (`carol@bastion:2201`), for messages.

extension TunnelConfigFile {
    /// The most hosts a chain may have: OpenSSH has no limit but loops forever (a process per hop) on a cycle.
    public static let maximumJumpHosts = 16

    /// `host` with `jumpChain` filled in from its `proxyJump`, or `jumpChainProblem` set when the chain cannot be
    /// resolved (a loop, a hop with problems of its own), so the host is not brought up. Part of `resolve(host:)`.
    func resolveJumps(_ host: HostConfig) -> HostConfig {
        var host = host
        guard let jumps = host.proxyJump, !jumps.isEmpty else { return host }
        do throws(ConfigError) {
            host.jumpChain = try chain(through: jumps, for: host, seen: [hopKey(host)])
        } catch {
            host.jumpChainProblem = error
        }
        return host
    }

    private func chain(through jumps: [JumpHost], for host: HostConfig, seen: [String]) throws(ConfigError) -> [HostConfig] {
        var hops: [HostConfig] = []
        for jump in jumps {
            var hop = resolveOwnSettings(host: jump.host)
            if let user = jump.user { hop.user = user }
            if let port = jump.port { hop.port = port }
            hop.location = hop.location ?? host.location
            // Named in messages as written in the ProxyJump entry ("bastion", "carol@bastion:2201").
            hop.name = (jump.user.map { $0 + "@" } ?? "") + jump.host + (jump.port.map { ":\($0)" } ?? "")
            if let problem = hop.problems.first {
                throw ConfigError(location: problem.location, message: "jump host \(jump): \(problem.message)")
            }
            hops.append(hop)
        }
        // The first hop's own ProxyJump applies (see the top of this file); the others' are ignored.
        var prefix: [HostConfig] = []
        if let first = hops.first, let own = first.proxyJump, !own.isEmpty {
            let key = hopKey(first)
            if seen.contains(key) {
                throw ConfigError(location: host.location, message: "ProxyJump loop: \((seen + [key]).joined(separator: " -> "))")
            }
            prefix = try chain(through: own, for: first, seen: seen + [key])
        }
        // Likewise its own ProxyCommand: that hop would be reached through the command, which tunnel does not
        // run yet, so no direct connection instead.
        if let first = hops.first, let problem = first.proxyCommandProblem {
            throw ConfigError(location: problem.location, message: "jump host \(first.name): \(problem.message)")
        }
        let all = prefix + hops.map { hop -> HostConfig in
            var hop = hop
            hop.proxyJump = nil
            hop.proxyCommand = nil
            hop.jumpChain = []
            return hop
        }
        // A hop that is the target itself, or any repeated hop, would go round in circles.
        var keys = Set<String>()
        for key in all.map(hopKey) + [hopKey(host)] where !keys.insert(key).inserted {
            throw ConfigError(location: host.location, message: "ProxyJump loop: \(key) appears twice in the chain to \(host.name)")
        }
        guard all.count <= Self.maximumJumpHosts else {
            throw ConfigError(location: host.location, message: "ProxyJump chain to \(host.name) has more than \(Self.maximumJumpHosts) hosts")
        }
        return all
    }

    /// What identifies a hop for loop detection: OpenSSH's own check compares name, user and port.
    private func hopKey(_ host: HostConfig) -> String { "\(host.user)@\(host.hostName):\(host.port)" }
}
