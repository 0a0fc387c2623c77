// Computes one host's settings from the statements, as OpenSSH does when
// connecting to it: walk the file in order; a Host or Match line decides
// whether the lines after it apply; the first value of a single-value keyword
// wins; forwards and identity files accumulate; and when the file asks for it,
// a second ("final") pass goes over the file again with the host name settled.
//
// `walk` is the straightforward definition (and the reference the tests check
// against); `TunnelConfigFile` collects settings with `BlockIndex`, which
// gives the same result without visiting every line for every host.

/// Settings as written, before defaults and expansion.
struct CollectedSettings {
    var hostName: String?
    var port: Int?
    var user: String?
    var identityFiles: [String] = []
    var userKnownHostsFiles: [String]?
    var strictHostKeyChecking: StrictHostKeyChecking?
    /// Local and Dynamic forwards in one list, as OpenSSH keeps them (`ssh -G` prints that order).
    var localList: [LocalListEntry] = []
    var remoteForwards: [RemoteForwardSpec] = []
    var serverAliveInterval: Int?
    var serverAliveCountMax: Int?
    var connectTimeout: Int?
    var gatewayPorts: Bool?
    var exitOnForwardFailure: Bool?
    var identitiesOnly: Bool?
    var identityAgent: String?
    var globalKnownHostsFiles: [String]?
    var hashKnownHosts: Bool?
    var proxyJump: WrittenProxyJump?
    /// A ProxyCommand line applied: a later ProxyJump does not.
    var proxyCommandSeen = false
    /// The first ProxyCommand that applied, as written; `.some(nil)` for `none`.
    var proxyCommand: String??
    var canonicalizeHostname: Bool?
    var connectionAttempts: Int?
    var passwordAuthentication: Bool?
    var pubkeyAuthentication: PubkeyAuthenticationMode?
    var kbdInteractiveAuthentication: Bool?
    var preferredAuthentications: [AuthenticationMethod]?
    var numberOfPasswordPrompts: Int?
    var bindAddress: String?
    var addressFamily: AddressFamily?
    var tag: String?
    var streamLocalBindMask: Int?
    var streamLocalBindUnlink: Bool?
    var permitRemoteOpen: PermitRemoteOpen?
    /// The first line of each kind that applies.
    var algorithmLists: [AlgorithmKind: AlgorithmList] = [:]
    var reconnectDelay: Int?
    var reconnectMaxDelay: Int?
    var sessions: Int?
    /// `.some(nil)`: set to `none`.
    var proxyAuth: ProxyAuth??
    /// Lines that apply but that tunnel cannot act on, and `Match exec` failures.
    var problems: [ConfigError] = []
    /// Set before OpenSSH's second ("final") pass: the host name is fixed from then on.
    var finalHostName: String?

    enum LocalListEntry {
        case local(WrittenLocalForward)
        case dynamic(WrittenDynamicForward)
    }

    var localForwards: [WrittenLocalForward] {
        localList.compactMap { if case .local(let f) = $0 { return f } else { return nil } }
    }

    var dynamicForwards: [WrittenDynamicForward] {
        localList.compactMap { if case .dynamic(let f) = $0 { return f } else { return nil } }
    }

    /// Some Local, Remote or Dynamic forward applies (`HostConfig.hasForwards`).
    var hasForwards: Bool {
        !localList.isEmpty || !remoteForwards.isEmpty
    }

    mutating func apply(_ setting: Setting) {
        switch setting {
        case .hostName(let v): hostName = hostName ?? v
        case .port(let v): port = port ?? v
        case .user(let v): user = user ?? v
        case .identityFile(let v):
            // OpenSSH drops a repeated IdentityFile (compared as written).
            if !identityFiles.contains(v) { identityFiles.append(v) }
        case .userKnownHostsFiles(let v): userKnownHostsFiles = userKnownHostsFiles ?? v
        case .strictHostKeyChecking(let v): strictHostKeyChecking = strictHostKeyChecking ?? v
        // OpenSSH (add_local_forward, add_remote_forward) drops a forward equal
        // to an earlier one, compared as written (bind address, ports, target).
        case .localForward(let v):
            if !localForwards.contains(where: { $0.sameForward(as: v) }) { localList.append(.local(v)) }
        case .remoteForward(let v):
            if !remoteForwards.contains(where: { $0.sameForward(as: v) }) { remoteForwards.append(v) }
        case .dynamicForward(let v):
            if !dynamicForwards.contains(where: { $0.sameForward(as: v) }) { localList.append(.dynamic(v)) }
        case .serverAliveInterval(let v): serverAliveInterval = serverAliveInterval ?? v
        case .serverAliveCountMax(let v): serverAliveCountMax = serverAliveCountMax ?? v
        case .connectTimeout(let v): connectTimeout = connectTimeout ?? v
        case .gatewayPorts(let v): gatewayPorts = gatewayPorts ?? v
        case .exitOnForwardFailure(let v): exitOnForwardFailure = exitOnForwardFailure ?? v
        case .identitiesOnly(let v): identitiesOnly = identitiesOnly ?? v
        case .identityAgent(let v): identityAgent = identityAgent ?? v
        case .globalKnownHostsFiles(let v): globalKnownHostsFiles = globalKnownHostsFiles ?? v
        case .hashKnownHosts(let v): hashKnownHosts = hashKnownHosts ?? v
        // OpenSSH takes the first of ProxyCommand and ProxyJump (but
        // `ProxyJump none` does not stop a later ProxyCommand).
        case .proxyJump(let v): if proxyJump == nil && !proxyCommandSeen { proxyJump = v }
        // A ProxyJump other than `none` before it wins (OpenSSH 9.2 readconf.c, `ssh -G` agrees).
        case .proxyCommand(let v):
            if !proxyCommandSeen && (proxyJump?.hops.isEmpty ?? true) { proxyCommand = .some(v) }
            proxyCommandSeen = true
        case .canonicalizeHostname(let v): canonicalizeHostname = canonicalizeHostname ?? v
        case .connectionAttempts(let v): connectionAttempts = connectionAttempts ?? v
        case .passwordAuthentication(let v): passwordAuthentication = passwordAuthentication ?? v
        case .pubkeyAuthentication(let v): pubkeyAuthentication = pubkeyAuthentication ?? v
        case .kbdInteractiveAuthentication(let v): kbdInteractiveAuthentication = kbdInteractiveAuthentication ?? v
        case .preferredAuthentications(let v): preferredAuthentications = preferredAuthentications ?? v
        case .numberOfPasswordPrompts(let v): numberOfPasswordPrompts = numberOfPasswordPrompts ?? v
        case .bindAddress(let v): bindAddress = bindAddress ?? v
        case .addressFamily(let v): addressFamily = addressFamily ?? v
        case .tag(let v): tag = tag ?? v
        case .streamLocalBindMask(let v): streamLocalBindMask = streamLocalBindMask ?? v
        case .streamLocalBindUnlink(let v): streamLocalBindUnlink = streamLocalBindUnlink ?? v
        case .permitRemoteOpen(let v): permitRemoteOpen = permitRemoteOpen ?? v
        case .algorithms(let v): algorithmLists[v.kind] = algorithmLists[v.kind] ?? v
        case .reconnectDelay(let v): reconnectDelay = reconnectDelay ?? v
        case .reconnectMaxDelay(let v): reconnectMaxDelay = reconnectMaxDelay ?? v
        case .sessions(let v): sessions = sessions ?? v
        case .proxyAuth(let v): proxyAuth = proxyAuth ?? .some(v)
        case .unusable(let problem): if !problems.contains(problem) { problems.append(problem) }
        }
    }
}

struct Resolver {
    /// The name `Host` lines are matched against: the name asked for, or in
    /// the final pass the host name the first pass settled on (as OpenSSH does).
    let host: String
    /// The name asked for (`Match originalhost`, `%n`).
    var originalHost: String
    /// OpenSSH's second pass (`Match final`, `Match canonical`).
    var finalPass = false
    var context: ConfigContext
    var matchExec: MatchExecPolicy
    /// Where `Match exec` outcomes are kept; nil: run every time.
    var execResults: ExecResults?

    init(host: String, originalHost: String? = nil, finalPass: Bool = false,
         context: ConfigContext = ConfigContext(homeDirectory: "/", userName: ""), matchExec: MatchExecPolicy = .skip,
         execResults: ExecResults? = nil) {
        self.host = host
        self.originalHost = originalHost ?? host
        self.finalPass = finalPass
        self.context = context
        self.matchExec = matchExec
        self.execResults = execResults
    }

    /// `active`: whether the current block applies. `neverMatch`: inside a
    /// file included from a block that does not apply, where no Host or
    /// Match line can switch settings on (OpenSSH's SSHCONF_NEVERMATCH).
    func walk(_ statements: [Statement], active: inout Bool, neverMatch: Bool, into settings: inout CollectedSettings) {
        for statement in statements {
            switch statement.directive {
            case .host(let patterns):
                active = !neverMatch && patterns.matches(host: host)
            case .match(let condition):
                // Not evaluated where it cannot apply: no `exec` runs for nothing.
                active = !neverMatch && MatchEvaluator(resolver: self).holds(condition, settings: &settings)
            case .include(let files):
                // An included file starts in the includer's state and cannot
                // change it: after the Include line the includer's block goes on.
                let outer = active
                for file in files {
                    walk(file.statements, active: &active, neverMatch: neverMatch || !outer, into: &settings)
                    active = outer
                }
            case .setting(let setting):
                if active { settings.apply(setting) }
            }
        }
    }

    /// The settings that apply to the host, by walking every statement;
    /// twice when the file asks for OpenSSH's final pass (a `Match final`
    /// line anywhere, or CanonicalizeHostname on for this host).
    func collect(_ statements: [Statement], finalPass wantsFinalPass: Bool = false) -> CollectedSettings {
        collect(finalPass: wantsFinalPass) { resolver, settings in
            var active = true  // lines before the first Host apply to every host
            resolver.walk(statements, active: &active, neverMatch: false, into: &settings)
        }
    }

    /// The two passes around `pass` (the walk, or `BlockIndex.collect`).
    func collect(finalPass wantsFinalPass: Bool, pass: (Resolver, inout CollectedSettings) -> Void) -> CollectedSettings {
        var settings = CollectedSettings()
        pass(self, &settings)
        guard wantsFinalPass || settings.canonicalizeHostname == true else { return settings }
        // OpenSSH (ssh.c) fixes the host name, then reads the files again
        // with it: Host lines now match the host name, settings already set
        // keep their first value, forwards and identities accumulate.
        let name = Resolver.hostName(settings, host: host)
        settings.finalHostName = name
        settings.hostName = name
        let second = Resolver(host: name, originalHost: originalHost, finalPass: true, context: context,
                              matchExec: matchExec, execResults: execResults)
        pass(second, &settings)
        return settings
    }

    /// The host name to connect to: HostName with `%h` expanded (or the name
    /// asked for), a numeric address in canonical form, anything else lowercased.
    static func hostName(_ settings: CollectedSettings, host: String) -> String {
        if let fixed = settings.finalHostName { return fixed }
        let raw = settings.hostName.map { raw in
            (try? Expansion.expand(raw, tokens: Expansion.hostNameTokens, value: { _ in host }, environment: nil)) ?? raw
        } ?? host
        return NumericHost.canonical(raw, family: settings.addressFamily ?? .any)
    }

    /// The host's configuration from the settings that apply to it (from
    /// `collect` or `BlockIndex.settings(for:)`): defaults, then expansions.
    func resolve(_ settings: CollectedSettings, context: ConfigContext, location: SourceLocation?) -> HostConfig {

        // OpenSSH expands %h in HostName, then lowercases the result (or
        // canonicalises it when it is a numeric address).
        let hostName = Resolver.hostName(settings, host: host)
        let port = settings.port ?? 22
        let user = settings.user ?? context.userName

        let shortHost = String(context.localHostName.prefix { $0 != "." })
        let tokenValue: (Character) -> String = { token in
            switch token {
            case "h": return hostName
            case "p": return String(port)
            case "r": return user
            case "u": return context.userName
            case "d": return context.homeDirectory
            case "n", "k": return host
            case "l": return context.localHostName
            case "L": return shortHost
            case "i": return String(context.userID)
            case "C": return SHA1.hexDigest(context.localHostName + hostName + String(port) + user)
            default: return ""
            }
        }
        // As OpenSSH: `~` first, then tokens and ${VAR} in one pass.
        // Values were checked while parsing; if one still fails, keep it as written.
        func expandPath(_ raw: String) -> String {
            let tilde = Expansion.expandTilde(raw, home: context.homeDirectory) ?? raw
            return (try? Expansion.expand(tilde, tokens: Expansion.fileTokens, value: tokenValue,
                                          environment: context.environment)) ?? tilde
        }

        let identityAgent: IdentityAgent? = settings.identityAgent.map { written in
            if written.lowercased() == "none" { return .disabled }
            if written == "SSH_AUTH_SOCK" { return .environment(written) }
            if written.hasPrefix("$") && !written.hasPrefix("${") { return .environment(String(written.dropFirst())) }
            return .socket(expandPath(written))
        }

        let gatewayPorts = settings.gatewayPorts ?? false
        let identityGiven = !settings.identityFiles.isEmpty
        var resolved = HostConfig(
            name: host,
            hostName: hostName,
            port: port,
            user: user,
            identityFiles: (identityGiven ? settings.identityFiles : HostConfig.defaultIdentityFiles).map(expandPath),
            identityFilesGiven: identityGiven,
            userKnownHostsFiles: (settings.userKnownHostsFiles ?? HostConfig.defaultUserKnownHostsFiles).map(expandPath),
            strictHostKeyChecking: settings.strictHostKeyChecking ?? .ask,
            localForwards: settings.localForwards.map { $0.resolved(gatewayPorts: gatewayPorts) },
            remoteForwards: settings.remoteForwards,
            dynamicForwards: settings.dynamicForwards.map { $0.resolved(gatewayPorts: gatewayPorts) },
            serverAliveInterval: settings.serverAliveInterval ?? 0,
            serverAliveCountMax: settings.serverAliveCountMax ?? 3,
            connectTimeout: settings.connectTimeout,
            gatewayPorts: gatewayPorts,
            exitOnForwardFailure: settings.exitOnForwardFailure ?? false,
            identitiesOnly: settings.identitiesOnly ?? false,
            location: location,
            identityAgent: identityAgent,
            globalKnownHostsFiles: settings.globalKnownHostsFiles ?? HostConfig.defaultGlobalKnownHostsFiles,
            hashKnownHosts: settings.hashKnownHosts ?? false,
            proxyJump: settings.proxyJump.flatMap { $0.hops.isEmpty ? nil : $0.hops },
            connectionAttempts: settings.connectionAttempts ?? 1,
            passwordAuthentication: settings.passwordAuthentication ?? true,
            pubkeyAuthentication: settings.pubkeyAuthentication?.enabled ?? true,
            kbdInteractiveAuthentication: settings.kbdInteractiveAuthentication ?? true,
            preferredAuthentications: settings.preferredAuthentications,
            bindAddress: settings.bindAddress,
            addressFamily: settings.addressFamily ?? .any,
            tag: settings.tag,
            streamLocalBindMask: settings.streamLocalBindMask ?? HostConfig.defaultStreamLocalBindMask,
            streamLocalBindUnlink: settings.streamLocalBindUnlink ?? false,
            proxyAuth: settings.proxyAuth ?? nil,
            permitRemoteOpen: settings.permitRemoteOpen ?? .any,
            problems: settings.problems
        )
        resolved.proxyCommand = settings.proxyCommand ?? nil
        resolved.algorithmLists = settings.algorithmLists
        resolved.serverAliveIntervalSet = settings.serverAliveInterval != nil
        resolved.numberOfPasswordPrompts = settings.numberOfPasswordPrompts ?? 3
        resolved.reconnectDelay = Double(settings.reconnectDelay ?? 1)
        resolved.reconnectMaxDelay = Double(max(settings.reconnectMaxDelay ?? 60, settings.reconnectDelay ?? 1))
        resolved.sessions = settings.sessions ?? 1
        return resolved
    }
}
