// Everything tunnel needs to know about one host, with OpenSSH's defaults
// filled in and `~`, `%h`, `${VAR}` already expanded.

public struct HostConfig: Sendable, Hashable {
    /// The name asked for (the Host alias); also what Host patterns were matched against.
    public var name: String
    /// HostName with `%h` expanded, lowercased as OpenSSH does; default: `name`, lowercased.
    public var hostName: String
    /// Default 22.
    public var port: Int
    /// Default: the local user's login name.
    public var user: String
    /// Expanded, in order, duplicates dropped (as OpenSSH does). When none were
    /// given: OpenSSH's default list (see `identityFilesGiven`).
    public var identityFiles: [String]
    /// False when `identityFiles` is OpenSSH's default list (~/.ssh/id_rsa, id_ecdsa,
    /// id_ecdsa_sk, id_ed25519, id_ed25519_sk, id_xmss, id_dsa): try the ones that exist.
    public var identityFilesGiven: Bool
    /// Expanded. Default ~/.ssh/known_hosts, ~/.ssh/known_hosts2; empty for `none`.
    public var userKnownHostsFiles: [String]
    /// Default `.ask` (OpenSSH's default).
    public var strictHostKeyChecking: StrictHostKeyChecking
    /// Every LocalForward that applies, in file order; the bind address of a
    /// forward written without one already reflects GatewayPorts.
    public var localForwards: [ForwardSpec]
    public var remoteForwards: [RemoteForwardSpec]
    public var dynamicForwards: [DynamicForwardSpec]
    /// Seconds between keepalives; 0 = off (OpenSSH's default; `ssh -G` prints 0 when unset).
    public var serverAliveInterval: Int
    /// Whether the config set `ServerAliveInterval` (tunnel's engine probes every 15 s when it did not).
    public var serverAliveIntervalSet = false
    /// tunnel's own `TunnelReconnectDelay` / `TunnelReconnectMaxDelay`: the reconnect backoff's first ceiling and
    /// cap, in seconds (defaults 1 and 60).
    public var reconnectDelay: Double = 1
    public var reconnectMaxDelay: Double = 60
    /// tunnel's own `TunnelSessions`: how many SSH sessions are kept up to the host (1...16, default 1); new
    /// forwarded connections are dealt over them round robin.
    public var sessions = 1
    /// The values `TunnelSessions` accepts.
    public static let sessionsRange = 1...16
    /// Missed keepalive replies before giving up; default 3.
    public var serverAliveCountMax: Int
    /// Seconds; nil = the system's TCP timeout (default).
    public var connectTimeout: Int?
    /// Default false: listeners without a bind address use loopback only.
    public var gatewayPorts: Bool
    /// Default false.
    public var exitOnForwardFailure: Bool
    /// Default false: also offer keys from an agent.
    public var identitiesOnly: Bool
    /// The first Host line that named this host without wildcards; nil if none did.
    public var location: SourceLocation?
    /// nil: the agent SSH_AUTH_SOCK names (OpenSSH's default).
    public var identityAgent: IdentityAgent?
    /// System-wide known_hosts files, read but never written; as written (OpenSSH
    /// expands neither `~` nor tokens here). Default /etc/ssh/ssh_known_hosts,
    /// /etc/ssh/ssh_known_hosts2; empty for `none`.
    public var globalKnownHostsFiles: [String]
    /// Record new host keys with hashed names. Default false.
    public var hashKnownHosts: Bool
    /// Jump hosts in the order they are connected through; nil when unset or
    /// `none` (also when a ProxyCommand came first). `%` tokens are kept as
    /// written, as OpenSSH 9.2 does. `jumpChain` is what connecting uses.
    public var proxyJump: [JumpHost]?
    /// `ProxyCommand` as written (rest of the line, `%` tokens unexpanded); nil when unset or `none`.
    /// tunnel does not run it (yet): a host with one is not brought up (`unsupportedSetting`), never
    /// connected to directly instead.
    public var proxyCommand: String?
    /// The hosts to connect through, first connected first, each with its own settings from the same file
    /// (`TunnelConfigFile.resolve(host:)` fills it in); empty for a direct connection.
    public var jumpChain: [HostConfig] = []
    /// Why the `ProxyJump` chain cannot be used (a loop, a hop with a problem of its own); `jumpChain` is then
    /// empty and the host must not be connected to (not directly either). Kept apart from `problems` because it
    /// is about connecting, not about the settings: `tunnel check --resolve` still prints them, as `ssh -G` does.
    public var jumpChainProblem: ConfigError?
    /// TCP connection attempts, one second apart; default 1.
    public var connectionAttempts: Int
    /// Default true.
    public var passwordAuthentication: Bool
    /// Default true; also true for OpenSSH's `unbound` and `host-bound`.
    public var pubkeyAuthentication: Bool
    /// Default true (`ChallengeResponseAuthentication` is an old name for it).
    public var kbdInteractiveAuthentication: Bool
    /// The order to try methods in; nil: OpenSSH's default order
    /// (`AuthenticationMethod.openSSHDefaultOrder`).
    public var preferredAuthentications: [AuthenticationMethod]?
    /// How many times a password (or keyboard-interactive answers) is asked for before giving up; default 3.
    public var numberOfPasswordPrompts = 3
    /// Local address (or host name) to connect from; nil: any. (Parsed; not used yet.)
    public var bindAddress: String?
    /// Default `.any`. (Parsed; not used yet.)
    public var addressFamily: AddressFamily
    /// `Tag` (what `Match tagged` tests); nil when unset.
    public var tag: String?
    /// Permission bits cleared on Unix sockets we create for forwards; default 0o177.
    public var streamLocalBindMask: Int
    /// Remove an existing socket file before listening on it; default false.
    public var streamLocalBindUnlink: Bool
    /// `TunnelProxyAuth user:password` (tunnel's own keyword): what DynamicForward proxy clients must give.
    /// nil (default, or `none`): no credentials asked.
    public var proxyAuth: ProxyAuth?
    /// `PermitRemoteOpen`: where a remote dynamic forward's connections may go. Default `.any`.
    public var permitRemoteOpen: PermitRemoteOpen
    /// `Ciphers`, `MACs`, `KexAlgorithms`, `HostKeyAlgorithms` as written (the first line of each that applies);
    /// absent: the engine's own preference. The engine lays them over what the linked SSH library supports.
    public var algorithmLists: [AlgorithmKind: AlgorithmList] = [:]
    /// Lines that apply to this host that tunnel cannot act on (a service
    /// name for a port, a path whose `${VAR}` is unset) and `Match exec`
    /// commands that failed or timed out, each with its file:line. Such a host
    /// must not be brought up: its settings are not what the file says.
    public var problems: [ConfigError]

    /// OpenSSH's default identity files, in the order it tries them.
    public static let defaultIdentityFiles = [
        "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
        "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa",
    ]
    public static let defaultUserKnownHostsFiles = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
    public static let defaultGlobalKnownHostsFiles = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
    /// OpenSSH's default StreamLocalBindMask (0177: only the owner may use the socket).
    public static let defaultStreamLocalBindMask = 0o177

    /// A host with OpenSSH's defaults; paths given here are used as is.
    public init(
        name: String,
        hostName: String? = nil,
        port: Int = 22,
        user: String,
        identityFiles: [String] = [],
        identityFilesGiven: Bool = true,
        userKnownHostsFiles: [String] = [],
        strictHostKeyChecking: StrictHostKeyChecking = .ask,
        localForwards: [ForwardSpec] = [],
        remoteForwards: [RemoteForwardSpec] = [],
        dynamicForwards: [DynamicForwardSpec] = [],
        serverAliveInterval: Int = 0,
        serverAliveCountMax: Int = 3,
        connectTimeout: Int? = nil,
        gatewayPorts: Bool = false,
        exitOnForwardFailure: Bool = false,
        identitiesOnly: Bool = false,
        location: SourceLocation? = nil,
        identityAgent: IdentityAgent? = nil,
        globalKnownHostsFiles: [String] = HostConfig.defaultGlobalKnownHostsFiles,
        hashKnownHosts: Bool = false,
        proxyJump: [JumpHost]? = nil,
        connectionAttempts: Int = 1,
        passwordAuthentication: Bool = true,
        pubkeyAuthentication: Bool = true,
        kbdInteractiveAuthentication: Bool = true,
        preferredAuthentications: [AuthenticationMethod]? = nil,
        bindAddress: String? = nil,
        addressFamily: AddressFamily = .any,
        tag: String? = nil,
        streamLocalBindMask: Int = HostConfig.defaultStreamLocalBindMask,
        streamLocalBindUnlink: Bool = false,
        proxyAuth: ProxyAuth? = nil,
        permitRemoteOpen: PermitRemoteOpen = .any,
        problems: [ConfigError] = []
    ) {
        self.name = name
        self.hostName = hostName ?? name.lowercased()
        self.port = port
        self.user = user
        self.identityFiles = identityFiles
        self.identityFilesGiven = identityFilesGiven
        self.userKnownHostsFiles = userKnownHostsFiles
        self.strictHostKeyChecking = strictHostKeyChecking
        self.localForwards = localForwards
        self.remoteForwards = remoteForwards
        self.dynamicForwards = dynamicForwards
        self.serverAliveInterval = serverAliveInterval
        self.serverAliveCountMax = serverAliveCountMax
        self.connectTimeout = connectTimeout
        self.gatewayPorts = gatewayPorts
        self.exitOnForwardFailure = exitOnForwardFailure
        self.identitiesOnly = identitiesOnly
        self.location = location
        self.identityAgent = identityAgent
        self.globalKnownHostsFiles = globalKnownHostsFiles
        self.hashKnownHosts = hashKnownHosts
        self.proxyJump = proxyJump
        self.connectionAttempts = connectionAttempts
        self.passwordAuthentication = passwordAuthentication
        self.pubkeyAuthentication = pubkeyAuthentication
        self.kbdInteractiveAuthentication = kbdInteractiveAuthentication
        self.preferredAuthentications = preferredAuthentications
        self.bindAddress = bindAddress
        self.addressFamily = addressFamily
        self.tag = tag
        self.streamLocalBindMask = streamLocalBindMask
        self.streamLocalBindUnlink = streamLocalBindUnlink
        self.proxyAuth = proxyAuth
        self.permitRemoteOpen = permitRemoteOpen
        self.problems = problems
    }

    /// True when the host has something to forward (what `tunnel up` brings up).
    public var hasForwards: Bool {
        !localForwards.isEmpty || !remoteForwards.isEmpty || !dynamicForwards.isEmpty
    }

    /// Local, remote and dynamic forwards that involve a Unix socket (an
    /// engine that only forwards TCP skips these, saying so).
    public var unixSocketForwardCount: Int {
        localForwards.filter(\.isUnixSocket).count + remoteForwards.filter(\.isUnixSocket).count
            + dynamicForwards.filter(\.isUnixSocket).count
    }
}

/// A user name and password (`TunnelProxyAuth user:password`). The password is never printed (see
/// `description`).
public struct ProxyAuth: Sendable, Hashable, CustomStringConvertible {
    public var user: String
    public var password: String

    public init(user: String, password: String) {
        self.user = user
        self.password = password
    }

    public var description: String { "\(user):(password hidden)" }
}

extension HostConfig {
    /// Why a host with a `ProxyCommand` is not connected to: tunnel does not run the command (yet), and
    /// connecting directly instead would bypass what the user set up (and may be unsafe). nil without one.
    public var proxyCommandProblem: ConfigError? {
        guard let command = proxyCommand else { return nil }
        return ConfigError(location: location, message: "ProxyCommand \(command.quotedForMessage) is not supported yet "
            + "(tunnel does not connect directly instead)")
    }
}
