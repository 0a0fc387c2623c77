// A parsed file is a list of statements in file order. Resolving a host walks
// them the way OpenSSH reads the file for that host, so parsing (and error
// reporting) happens once and resolving is cheap and cannot fail.

struct Statement: Sendable {
    var location: SourceLocation
    var directive: Directive
}

enum Directive: Sendable {
    /// Starts a block: following settings apply when the patterns match.
    case host([HostPattern])
    /// Starts a block: following settings apply when every criterion holds.
    case match(MatchCondition)
    /// Files an `Include` line expanded to, each parsed on its own.
    case include([IncludedFile])
    case setting(Setting)
}

struct IncludedFile: Sendable {
    var path: String
    var statements: [Statement]
}

/// One validated setting, as written (expansions that depend on the host wait for resolve).
enum Setting: Sendable {
    case hostName(String)
    case port(Int)
    case user(String)
    case identityFile(String)
    /// Empty for `none`.
    case userKnownHostsFiles([String])
    case strictHostKeyChecking(StrictHostKeyChecking)
    case localForward(WrittenLocalForward)
    case remoteForward(RemoteForwardSpec)
    case dynamicForward(WrittenDynamicForward)
    /// `nil` for `none`: leaves the setting unset, so a later line may still set it (as in OpenSSH).
    case serverAliveInterval(Int?)
    case serverAliveCountMax(Int)
    case connectTimeout(Int?)
    case gatewayPorts(Bool)
    case exitOnForwardFailure(Bool)
    case identitiesOnly(Bool)
    /// As written (expanded at resolve).
    case identityAgent(String)
    /// As written (OpenSSH does not expand them); empty for `none`.
    case globalKnownHostsFiles([String])
    case hashKnownHosts(Bool)
    case proxyJump(WrittenProxyJump)
    /// A `ProxyCommand` line: the rest of the line as written (OpenSSH keeps it whole, comments and quotes
    /// included), nil for `none`. A ProxyJump after it does not apply, as in OpenSSH.
    case proxyCommand(String?)
    /// `CanonicalizeHostname` (otherwise ignored): when on, OpenSSH reads the file a second time.
    case canonicalizeHostname(Bool)
    case connectionAttempts(Int)
    case passwordAuthentication(Bool)
    case pubkeyAuthentication(PubkeyAuthenticationMode)
    case kbdInteractiveAuthentication(Bool)
    case preferredAuthentications([AuthenticationMethod])
    case numberOfPasswordPrompts(Int)
    case bindAddress(String)
    case addressFamily(AddressFamily)
    case tag(String)
    /// Octal permission bits cleared on socket files we create (OpenSSH default 0177).
    case streamLocalBindMask(Int)
    case streamLocalBindUnlink(Bool)
    case permitRemoteOpen(PermitRemoteOpen)
    /// `Ciphers`, `MACs`, `KexAlgorithms` or `HostKeyAlgorithms`.
    case algorithms(AlgorithmList)
    /// tunnel's own: the reconnect backoff's first ceiling and cap, in seconds.
    case reconnectDelay(Int)
    case reconnectMaxDelay(Int)
    /// tunnel's own `TunnelSessions N`: SSH sessions kept up to the host (1...16).
    case sessions(Int)
    /// tunnel's own `TunnelProxyAuth user:password`; nil for `none`.
    case proxyAuth(ProxyAuth?)
    /// A line OpenSSH accepts but tunnel cannot act on (a service name for a
    /// port, a path whose expansion fails): it makes the hosts that use it
    /// unusable instead of the whole file (`HostConfig.problems`).
    case unusable(ConfigError)
}
