// A host's resolved settings printed the way `ssh -G` prints them (OpenSSH's
// dump_client_config), for the keywords tunnel acts on: so `tunnel check FILE
// --resolve HOST` can be compared line by line with `ssh -F FILE -G HOST`.

/// One `keyword value` line of `ssh -G` style output.
public struct ResolvedSetting: Sendable, Hashable, CustomStringConvertible {
    /// Lower-case, as `ssh -G` prints it.
    public var keyword: String
    public var value: String

    public init(keyword: String, value: String) {
        self.keyword = keyword
        self.value = value
    }

    /// `keyword value`.
    public var description: String { "\(keyword) \(value)" }
}

extension TunnelConfigFile {
    /// The keywords `resolvedSettings(host:)` prints, in its order.
    public static let resolvedKeywords = [
        "hostname", "port", "user", "identityfile", "userknownhostsfile", "stricthostkeychecking",
        "localforward", "remoteforward", "dynamicforward", "serveraliveinterval", "serveralivecountmax",
        "connecttimeout", "gatewayports", "exitonforwardfailure", "identitiesonly",
        "identityagent", "globalknownhostsfile", "hashknownhosts", "proxyjump", "proxycommand", "connectionattempts",
        "passwordauthentication", "pubkeyauthentication", "kbdinteractiveauthentication",
        "preferredauthentications", "numberofpasswordprompts", "bindaddress", "addressfamily", "streamlocalbindmask", "streamlocalbindunlink",
        "permitremoteopen",
    ]

    /// What `ssh -F path -G host` prints for the keywords tunnel acts on, in the
    /// same spelling: `identityfile` as written (ssh -G does not expand it),
    /// `userknownhostsfile` expanded and space-separated, forwards as
    /// `[bind]:port [host]:port` with the bind address as written. Like ssh -G,
    /// `identityagent`, `proxyjump`, `proxycommand`, `preferredauthentications` and
    /// `bindaddress` appear only when set.
    public func resolvedSettings(host: String) -> [ResolvedSetting] {
        // Collected once: with `Match exec` lines, collecting runs commands.
        let written = collectSettings(host: host)
        let resolved = resolver(host).resolve(written, context: context, location: concreteLocations[host])

        var out: [ResolvedSetting] = []
        func add(_ keyword: String, _ value: String) { out.append(ResolvedSetting(keyword: keyword, value: value)) }
        func flag(_ value: Bool) -> String { value ? "yes" : "no" }

        add("hostname", resolved.hostName)
        add("port", String(resolved.port))
        add("user", resolved.user)
        for file in written.identityFiles.isEmpty ? HostConfig.defaultIdentityFiles : written.identityFiles {
            add("identityfile", file)
        }
        add("userknownhostsfile",
            resolved.userKnownHostsFiles.isEmpty ? "none" : resolved.userKnownHostsFiles.joined(separator: " "))
        add("stricthostkeychecking", SSHDashG.strictHostKeyChecking(resolved.strictHostKeyChecking))
        // ssh -G keeps Local and Dynamic forwards in one list and prints it
        // twice. Its DynamicForward pass also prints every LocalForward to a
        // socket path (OpenSSH 9.2's dump_cfg_forwards only skips entries
        // with a target host): reproduced so the output stays diffable.
        for entry in written.localList {
            switch entry {
            case .dynamic(let forward):
                add("dynamicforward", SSHDashG.listener(forward.listener))
            case .local(let forward):
                if case .unixSocket = forward.target { add("dynamicforward", SSHDashG.listener(forward.listener)) }
            }
        }
        for forward in written.localForwards {
            add("localforward", SSHDashG.listener(forward.listener) + " " + SSHDashG.target(forward.target))
        }
        for forward in written.remoteForwards {
            let target: String
            switch forward.target {
            case .host(let host, let port): target = SSHDashG.target(host, port)
            case .socks: target = SSHDashG.target("socks", 0)  // how OpenSSH stores a remote dynamic forward
            case .unixSocket(let path): target = path
            }
            let listener = forward.listenSocketPath ?? SSHDashG.listener(forward.bindAsWritten, forward.listenPort)
            add("remoteforward", listener + " " + target)
        }
        add("serveraliveinterval", String(resolved.serverAliveInterval))
        add("serveralivecountmax", String(resolved.serverAliveCountMax))
        add("connecttimeout", resolved.connectTimeout.map { String($0) } ?? "none")
        add("gatewayports", flag(resolved.gatewayPorts))
        add("exitonforwardfailure", flag(resolved.exitOnForwardFailure))
        add("identitiesonly", flag(resolved.identitiesOnly))
        // ssh -G prints IdentityAgent expanded (`none`, `SSH_AUTH_SOCK` and `$NAME` as written).
        if let agent = written.identityAgent {
            if case .socket(let path)? = resolved.identityAgent {
                add("identityagent", path)
            } else {
                add("identityagent", agent)
            }
        }
        add("globalknownhostsfile",
            resolved.globalKnownHostsFiles.isEmpty ? "none" : resolved.globalKnownHostsFiles.joined(separator: " "))
        add("hashknownhosts", flag(resolved.hashKnownHosts))
        // The hops before the last as written, the last one normalised (absent for `none`).
        if let jump = written.proxyJump, let last = jump.hops.last {
            add("proxyjump", (jump.leadingText.map { $0 + "," } ?? "") + last.description)
        }
        // As written, tokens unexpanded (absent for `none`), as ssh -G prints it.
        if let command = resolved.proxyCommand { add("proxycommand", command) }
        add("connectionattempts", String(resolved.connectionAttempts))
        add("passwordauthentication", flag(resolved.passwordAuthentication))
        add("pubkeyauthentication", (written.pubkeyAuthentication ?? .yes).sshDashG)
        add("kbdinteractiveauthentication", flag(resolved.kbdInteractiveAuthentication))
        if let methods = resolved.preferredAuthentications {
            add("preferredauthentications", methods.map(\.rawValue).joined(separator: ","))
        }
        add("numberofpasswordprompts", String(resolved.numberOfPasswordPrompts))
        if let bind = resolved.bindAddress { add("bindaddress", bind) }
        add("addressfamily", resolved.addressFamily.rawValue)
        add("streamlocalbindmask", "0" + String(resolved.streamLocalBindMask, radix: 8))
        add("streamlocalbindunlink", flag(resolved.streamLocalBindUnlink))
        add("permitremoteopen", resolved.permitRemoteOpen.description)
        return out
    }
}

/// OpenSSH's spellings in `ssh -G` output (readconf.c dump_cfg_forwards, fmt_intarg).
enum SSHDashG {
    static func strictHostKeyChecking(_ value: StrictHostKeyChecking) -> String {
        switch value {
        case .yes: return "true"
        case .no: return "false"
        case .ask: return "ask"
        case .acceptNew: return "accept-new"
        }
    }

    /// `8080` when no bind address was written, else `[bind]:8080` (also `[]:8080`, `[*]:8080`).
    static func listener(_ bind: String?, _ port: Int) -> String {
        guard let bind else { return String(port) }
        return "[\(bind)]:\(port)"
    }

    static func target(_ host: String, _ port: Int) -> String {
        "[\(host)]:\(port)"
    }

    /// A socket path as written, or a TCP listener as `listener(_:_:)` prints it.
    static func listener(_ listener: WrittenListener) -> String {
        switch listener {
        case .tcp(let bind, let port): return self.listener(bind, port)
        case .unixSocket(let path): return path
        }
    }

    static func target(_ target: ForwardTarget) -> String {
        switch target {
        case .tcp(let host, let port): return self.target(host, port)
        case .unixSocket(let path): return path
        }
    }
}

// OpenSSH's forward_equals: two forwards are the same when written the same
// (bind address as written, ports, target); the location does not count.

extension WrittenLocalForward {
    func sameForward(as other: WrittenLocalForward) -> Bool {
        listener == other.listener && target == other.target
    }
}

extension WrittenDynamicForward {
    func sameForward(as other: WrittenDynamicForward) -> Bool {
        listener == other.listener
    }
}

extension RemoteForwardSpec {
    func sameForward(as other: RemoteForwardSpec) -> Bool {
        bindAsWritten == other.bindAsWritten && listenPort == other.listenPort
            && listenSocketPath == other.listenSocketPath && target == other.target
    }
}
