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
        "identityagent", "globalknownhostsfile", "hashknownhosts", "proxyjump", "connectionattempts",
        "passwordauthentication", "pubkeyauthentication", "kbdinteractiveauthentication",
        "preferredauthentications", "bindaddress", "addressfamily",
    ]

    /// What `ssh -F path -G host` prints for the keywords tunnel acts on, in the
    /// same spelling: `identityfile` as written (ssh -G does not expand it),
    /// `userknownhostsfile` expanded and space-separated, forwards as
    /// `[bind]:port [host]:port` with the bind address as written. Like ssh -G,
    /// `identityagent`, `proxyjump`, `preferredauthentications` and
    /// `bindaddress` appear only when set.
    public func resolvedSettings(host: String) -> [ResolvedSetting] {
        let resolved = resolve(host: host)
        var written = CollectedSettings()
        var active = true
        Resolver(host: host).walk(statements, active: &active, neverMatch: false, into: &written)

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
        for forward in written.localForwards {
            add("localforward", SSHDashG.listener(forward.bind, forward.listenPort) + " "
                + SSHDashG.target(forward.targetHost, forward.targetPort))
        }
        for forward in written.remoteForwards {
            let target: String
            switch forward.target {
            case .host(let host, let port): target = SSHDashG.target(host, port)
            case .socks: target = SSHDashG.target("socks", 0)  // how OpenSSH stores a remote dynamic forward
            }
            add("remoteforward", SSHDashG.listener(forward.bindAsWritten, forward.listenPort) + " " + target)
        }
        for forward in written.dynamicForwards {
            add("dynamicforward", SSHDashG.listener(forward.bind, forward.listenPort))
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
        add("connectionattempts", String(resolved.connectionAttempts))
        add("passwordauthentication", flag(resolved.passwordAuthentication))
        add("pubkeyauthentication", (written.pubkeyAuthentication ?? .yes).sshDashG)
        add("kbdinteractiveauthentication", flag(resolved.kbdInteractiveAuthentication))
        if let methods = resolved.preferredAuthentications {
            add("preferredauthentications", methods.map(\.rawValue).joined(separator: ","))
        }
        if let bind = resolved.bindAddress { add("bindaddress", bind) }
        add("addressfamily", resolved.addressFamily.rawValue)
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
}

// OpenSSH's forward_equals: two forwards are the same when written the same
// (bind address as written, ports, target); the location does not count.

extension WrittenLocalForward {
    func sameForward(as other: WrittenLocalForward) -> Bool {
        bind == other.bind && listenPort == other.listenPort
            && targetHost == other.targetHost && targetPort == other.targetPort
    }
}

extension WrittenDynamicForward {
    func sameForward(as other: WrittenDynamicForward) -> Bool {
        bind == other.bind && listenPort == other.listenPort
    }
}

extension RemoteForwardSpec {
    func sameForward(as other: RemoteForwardSpec) -> Bool {
        bindAsWritten == other.bindAsWritten && listenPort == other.listenPort && target == other.target
    }
}
