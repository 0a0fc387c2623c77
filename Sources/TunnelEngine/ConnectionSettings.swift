import Foundation
import TunnelConfig

/// What one SSH connection needs to know, taken from a resolved `HostConfig`.
/// Kept separate from the config type so an embedding app can build it by hand.
public struct ConnectionSettings: Sendable {
    /// The tunnel's name (the `Host` alias), used in every log line.
    public var name: String
    public var hostName: String
    public var port: Int
    public var user: String
    /// Private key files to try, in order, as the file system takes them: `~` is already expanded (resolving a
    /// `HostConfig` does it, as OpenSSH does); nothing below this layer expands it.
    public var identityFiles: [String]
    /// When false, the identity files are OpenSSH's defaults: missing ones are skipped silently.
    public var identityFilesGiven: Bool
    /// The ssh-agent's socket, whose keys are offered before the identity files (as OpenSSH does); nil: no agent.
    /// `init(_ host:)` resolves `IdentityAgent` (default: `SSH_AUTH_SOCK`) into it.
    public var agentSocket: String?
    /// `IdentitiesOnly yes`: offer only the agent keys that match an identity file's `.pub`.
    public var identitiesOnly = false
    public var hostKeyPolicy: HostKeyPolicy
    /// Bound on each TCP connect, on handshake + authentication, and on how long a client waits for a session
    /// that is down (`ConnectTimeout`; our default 10 s, where OpenSSH waits for TCP's own timeout).
    public var connectTimeoutSeconds: Int64
    /// Passphrases for encrypted identity files, by path (asked for by the front end before connecting).
    public var passphrases: [String: String] = [:]
    /// User-authentication methods to try, in order, before the server says which it offers
    /// (see `AuthenticationPlan`); the default is OpenSSH's.
    public var authenticationMethods: [AuthenticationMethod] = AuthenticationPlan.configured(
        preferred: nil, publickey: true, keyboardInteractive: true, password: true, passwordPrompts: 3)
    /// How many wrong passwords (or keyboard-interactive rounds) before that method is given up
    /// (`NumberOfPasswordPrompts`).
    public var numberOfPasswordPrompts = 3
    /// Asks a person for a password or a keyboard-interactive answer; nil answer: none given. Called from a pool
    /// thread (never the event loop), one question at a time per session; it may block while the person types.
    /// nil: nobody can be asked (a service), so methods that need a person are reported instead of tried.
    public var askSecret: (@Sendable (SecretRequest) -> String?)?
    /// Permission bits taken away from Unix-domain socket listeners (`StreamLocalBindMask`; OpenSSH's default
    /// 0177 leaves 0600).
    public var streamLocalBindMask: Int = 0o177
    /// Replace an existing socket file when binding a Unix-domain socket listener (`StreamLocalBindUnlink`).
    public var streamLocalBindUnlink = false
    /// `RemoteForward`s each session asks the server for when it is up (TCP on the server's side, to a TCP target
    /// here; `init(_ host:)` leaves out the kinds the engine cannot serve).
    public var remoteForwards: [RemoteForwardSpec] = []
    /// `ExitOnForwardFailure yes`: a refused remote forward ends the session (and a host does not come up)
    /// instead of being asked for again with backoff.
    public var exitOnForwardFailure = false
    /// `PermitRemoteOpen`: where the connections of a remote dynamic forward (`RemoteForward [bind:]port` with no
    /// target, SOCKS served here) may go.
    public var permitRemoteOpen = PermitRemoteOpen.any
    /// Seconds a SOCKS client on the server's side of a remote dynamic forward has to send its complete request.
    public var remoteSOCKSHandshakeTimeout = 10.0
    /// Seconds of silence from the server before a keepalive probe; 0 turns dead-link detection off.
    /// Our default is 15 (OpenSSH's is off): a dead link is found within a minute, not after TCP's retransmits.
    public var serverAliveInterval: Double = ConnectionSettings.defaultServerAliveInterval
    /// Unanswered probes after which (and one more interval) the session is given up.
    public var serverAliveCountMax = 3
    /// Reconnect backoff: the first ceiling and the cap, in seconds.
    public var reconnectDelay = 1.0
    public var reconnectMaxDelay = 60.0
    /// SSH sessions kept up to the host, each on its own event loop (`TunnelSessions`; 1 = one, as plain ssh).
    public var sessions = 1
    /// TCP connect attempts per session attempt, one second apart (`ConnectionAttempts`).
    public var connectionAttempts = 1
    /// How big forwarded channels' receive windows start and may grow (see `ReceiveWindowLimits`).
    public var receiveWindow = ReceiveWindowLimits.default
    /// `Ciphers`, `MACs`, `KexAlgorithms`, `HostKeyAlgorithms` as written; laid over tunnel's own preference and
    /// what the linked libssh2 supports when connecting (`AlgorithmPreference`).
    public var algorithmLists: [AlgorithmKind: AlgorithmList] = [:]
    /// The jump hosts (`ProxyJump`) this server is reached through, first connected first, each with its own
    /// settings (host key check, authentication); empty: a direct TCP connection. A hop's own `jumpHosts` and
    /// `remoteForwards` are not used.
    public var jumpHosts: [ConnectionSettings] = []

    public static let defaultServerAliveInterval: Double = 15
    public static let defaultConnectTimeout: Int64 = 10

    public init(name: String, hostName: String, port: Int, user: String, identityFiles: [String],
                identityFilesGiven: Bool = true, hostKeyPolicy: HostKeyPolicy, connectTimeoutSeconds: Int64 = ConnectionSettings.defaultConnectTimeout) {
        self.name = name
        self.hostName = hostName
        self.port = port
        self.user = user
        self.identityFiles = identityFiles
        self.identityFilesGiven = identityFilesGiven
        self.hostKeyPolicy = hostKeyPolicy
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    public init(_ host: HostConfig) {
        let mode: HostKeyPolicy.Mode
        switch host.strictHostKeyChecking {
        case .yes: mode = .strict
        case .ask: mode = .ask
        case .acceptNew: mode = .acceptNew
        case .no: mode = .off
        }
        // `IdentityFile none` means no identity file at all, as in OpenSSH.
        self.init(name: host.name, hostName: host.hostName, port: host.port, user: host.user,
                  identityFiles: host.identityFiles.filter { $0.lowercased() != "none" }, identityFilesGiven: host.identityFilesGiven,
                  hostKeyPolicy: HostKeyPolicy(mode: mode, knownHostsFiles: host.userKnownHostsFiles,
                                               globalKnownHostsFiles: host.globalKnownHostsFiles,
                                               hashNewEntries: host.hashKnownHosts),
                  connectTimeoutSeconds: host.connectTimeout.map(Int64.init) ?? Self.defaultConnectTimeout)
        agentSocket = Self.agentSocket(host.identityAgent, environment: ProcessInfo.processInfo.environment)
        identitiesOnly = host.identitiesOnly
        streamLocalBindMask = host.streamLocalBindMask
        streamLocalBindUnlink = host.streamLocalBindUnlink
        remoteForwards = host.remoteForwards.filter(\.isServedByEngine)
        exitOnForwardFailure = host.exitOnForwardFailure
        permitRemoteOpen = host.permitRemoteOpen
        algorithmLists = host.algorithmLists
        serverAliveInterval = host.serverAliveIntervalSet ? Double(host.serverAliveInterval) : Self.defaultServerAliveInterval
        serverAliveCountMax = host.serverAliveCountMax
        reconnectDelay = host.reconnectDelay
        reconnectMaxDelay = host.reconnectMaxDelay
        sessions = host.sessions
        connectionAttempts = max(host.connectionAttempts, 1)
        numberOfPasswordPrompts = host.numberOfPasswordPrompts
        authenticationMethods = AuthenticationPlan.configured(
            preferred: host.preferredAuthentications, publickey: host.pubkeyAuthentication,
            keyboardInteractive: host.kbdInteractiveAuthentication, password: host.passwordAuthentication,
            passwordPrompts: host.numberOfPasswordPrompts)
        jumpHosts = host.jumpChain.map { hop in
            var settings = ConnectionSettings(hop)
            settings.remoteForwards = []
            settings.jumpHosts = []
            return settings
        }
    }

    /// Where `IdentityAgent` says the agent is: nil (not written) is `SSH_AUTH_SOCK`, as in OpenSSH; an empty or
    /// unset variable means no agent.
    public static func agentSocket(_ agent: IdentityAgent?, environment: [String: String]) -> String? {
        let path: String?
        switch agent {
        case nil: path = environment["SSH_AUTH_SOCK"]
        case .disabled?: path = nil
        case .environment(let name)?: path = environment[name]
        case .socket(let socket)?: path = socket
        }
        guard let path, !path.isEmpty else { return nil }
        return path
    }

    /// "root@127.0.0.1:2222", for messages.
    public var peer: String { "\(user)@\(hostName):\(port)" }
}
