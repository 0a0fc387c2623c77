// The vocabulary of ssh_config(5).
//
// Three kinds of words: the ones tunnel acts on (or stores for the engine),
// the rest of what OpenSSH 9.x knows (warned about once, then ignored, so
// ~/.ssh/config itself can be read), and anything else (an error, as in
// OpenSSH, unless covered by IgnoreUnknown).

/// Keywords this module parses, validates and stores (some only for `--resolve`
/// and later releases of the engine).
enum Keyword: String, CaseIterable, Sendable {
    case host = "Host"
    case match = "Match"
    case include = "Include"
    case hostName = "HostName"
    case port = "Port"
    case user = "User"
    case identityFile = "IdentityFile"
    case userKnownHostsFile = "UserKnownHostsFile"
    case strictHostKeyChecking = "StrictHostKeyChecking"
    case localForward = "LocalForward"
    case remoteForward = "RemoteForward"
    case dynamicForward = "DynamicForward"
    case serverAliveInterval = "ServerAliveInterval"
    case serverAliveCountMax = "ServerAliveCountMax"
    case connectTimeout = "ConnectTimeout"
    case gatewayPorts = "GatewayPorts"
    case exitOnForwardFailure = "ExitOnForwardFailure"
    case identitiesOnly = "IdentitiesOnly"
    case ignoreUnknown = "IgnoreUnknown"
    case identityAgent = "IdentityAgent"
    case globalKnownHostsFile = "GlobalKnownHostsFile"
    case hashKnownHosts = "HashKnownHosts"
    case proxyJump = "ProxyJump"
    case connectionAttempts = "ConnectionAttempts"
    case passwordAuthentication = "PasswordAuthentication"
    case pubkeyAuthentication = "PubkeyAuthentication"
    case kbdInteractiveAuthentication = "KbdInteractiveAuthentication"
    case preferredAuthentications = "PreferredAuthentications"
    case numberOfPasswordPrompts = "NumberOfPasswordPrompts"
    case bindAddress = "BindAddress"
    case addressFamily = "AddressFamily"
    case tag = "Tag"
    case streamLocalBindMask = "StreamLocalBindMask"
    case streamLocalBindUnlink = "StreamLocalBindUnlink"
    case permitRemoteOpen = "PermitRemoteOpen"
    case ciphers = "Ciphers"
    case macs = "MACs"
    case kexAlgorithms = "KexAlgorithms"
    case hostKeyAlgorithms = "HostKeyAlgorithms"
    // tunnel's own keywords: all start with "Tunnel", so one `IgnoreUnknown Tunnel*` line keeps the file valid
    // for `ssh -F` (OpenSSH's own `Tunnel` and `TunnelDevice` are known to it, so the pattern leaves them alone).
    case tunnelReconnectDelay = "TunnelReconnectDelay"
    case tunnelReconnectMaxDelay = "TunnelReconnectMaxDelay"
    /// `TunnelProxyAuth user:password`: what DynamicForward proxy clients must give.
    case tunnelProxyAuth = "TunnelProxyAuth"
    /// `TunnelSessions N`: how many SSH sessions to keep up to the host, new connections spread over them.
    case tunnelSessions = "TunnelSessions"

    /// Lowercased spelling → keyword; OpenSSH also accepts a few aliases.
    static let byLowercasedName: [String: Keyword] = {
        var table = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue.lowercased(), $0) })
        table["identityfile2"] = .identityFile
        table["setuptimeout"] = .connectTimeout
        // Old names OpenSSH 9.x still reads as these keywords.
        for alias in ["challengeresponseauthentication", "skeyauthentication", "tisauthentication"] {
            table[alias] = .kbdInteractiveAuthentication
        }
        table["dsaauthentication"] = .pubkeyAuthentication
        return table
    }()

    /// The name as ssh_config(5) spells it, for messages.
    var name: String { rawValue }

    /// Keywords of tunnel's own, which OpenSSH rejects unless `IgnoreUnknown` covers them.
    var isOwn: Bool {
        switch self {
        case .tunnelReconnectDelay, .tunnelReconnectMaxDelay, .tunnelProxyAuth, .tunnelSessions: return true
        default: return false
        }
    }

    /// The `IgnoreUnknown` line that covers every keyword of tunnel's own.
    static let ownKeywordsIgnoreLine = "IgnoreUnknown Tunnel*"
}

/// Every other keyword OpenSSH 9.x accepts in ssh_config, including its
/// aliases, deprecated and unsupported-but-tolerated words (OpenSSH does not
/// fail on those either). Lowercased key → the spelling used in messages.
enum KnownOpenSSHKeywords {
    static let ignored: [String: String] = {
        let names = [
            // Documented in ssh_config(5), OpenSSH 9.x.
            "AddKeysToAgent", "BatchMode", "BindInterface",
            "CanonicalDomains", "CanonicalizeFallbackLocal", "CanonicalizeHostname",
            "CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs", "CASignatureAlgorithms",
            "CertificateFile", "ChannelTimeout", "CheckHostIP", "ClearAllForwardings",
            "Compression", "ControlMaster", "ControlPath", "ControlPersist",
            "EnableEscapeCommandline", "EnableSSHKeysign", "EscapeChar", "FingerprintHash",
            "ForkAfterAuthentication", "ForwardAgent", "ForwardX11", "ForwardX11Timeout",
            "ForwardX11Trusted", "GSSAPIAuthentication",
            "GSSAPIClientIdentity", "GSSAPIDelegateCredentials", "GSSAPIKeyExchange",
            "GSSAPIRenewalForcesRekey", "GSSAPIServerIdentity", "GSSAPITrustDns",
            "GSSAPIKexAlgorithms", "HostbasedAcceptedAlgorithms",
            "HostbasedAuthentication", "HostKeyAlias",
            "IPQoS", "KbdInteractiveDevices",
            "KnownHostsCommand", "LocalCommand", "LogLevel", "LogVerbose",
            "NoHostAuthenticationForLocalhost",
            "ObscureKeystrokeTiming", "PermitLocalCommand",
            "PKCS11Provider", "ProxyCommand",
            "ProxyUseFdpass", "PubkeyAcceptedAlgorithms",
            "RekeyLimit", "RemoteCommand", "RequestTTY", "RequiredRSASize", "RevokedHostKeys",
            "SecurityKeyProvider", "SendEnv", "SessionType", "SetEnv", "StdinNull",
            "SyslogFacility",
            "TCPKeepAlive", "Tunnel", "TunnelDevice", "UpdateHostKeys", "VerifyHostKeyDNS",
            "VisualHostKey", "XAuthLocation",
            // Aliases and old names OpenSSH still accepts.
            "HostbasedKeyTypes",
            "KeepAlive", "PubkeyAcceptedKeyTypes",
            "ProtocolKeepAlives", "SmartcardDevice",
            // Deprecated or unsupported: OpenSSH logs and carries on.
            "AFSTokenPassing", "Cipher", "CompressionLevel", "FallBackToRsh",
            "GlobalKnownHostsFile2", "KerberosAuthentication", "KerberosTGTPassing", "Protocol",
            "RhostsAuthentication", "RhostsRSAAuthentication", "RSAAuthentication",
            "UseBlacklistedKeys", "UsePrivilegedPort", "UseRoaming", "UseRsh",
            "UserKnownHostsFile2",
            // Apple's OpenSSH (macOS ~/.ssh/config files often carry it).
            "UseKeychain",
        ]
        return Dictionary(names.map { ($0.lowercased(), $0) }, uniquingKeysWith: { first, _ in first })
    }()
}
