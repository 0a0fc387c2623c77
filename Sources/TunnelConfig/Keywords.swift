// The vocabulary of ssh_config(5).
//
// Three kinds of words: the ones tunnel acts on (or stores for the engine),
// the rest of what OpenSSH 9.x knows (warned about once, then ignored, so
// ~/.ssh/config itself can be read), and anything else (an error, as in
// OpenSSH, unless covered by IgnoreUnknown).

/// Keywords this module parses, validates and stores.
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

    /// Lowercased spelling → keyword; OpenSSH also accepts a few aliases.
    static let byLowercasedName: [String: Keyword] = {
        var table = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue.lowercased(), $0) })
        table["identityfile2"] = .identityFile
        table["setuptimeout"] = .connectTimeout
        return table
    }()

    /// The name as ssh_config(5) spells it, for messages.
    var name: String { rawValue }
}

/// Every other keyword OpenSSH 9.x accepts in ssh_config, including its
/// aliases, deprecated and unsupported-but-tolerated words (OpenSSH does not
/// fail on those either). Lowercased key → the spelling used in messages.
enum KnownOpenSSHKeywords {
    static let ignored: [String: String] = {
        let names = [
            // Documented in ssh_config(5), OpenSSH 9.x.
            "AddKeysToAgent", "AddressFamily", "BatchMode", "BindAddress", "BindInterface",
            "CanonicalDomains", "CanonicalizeFallbackLocal", "CanonicalizeHostname",
            "CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs", "CASignatureAlgorithms",
            "CertificateFile", "ChannelTimeout", "CheckHostIP", "Ciphers", "ClearAllForwardings",
            "Compression", "ConnectionAttempts", "ControlMaster", "ControlPath", "ControlPersist",
            "EnableEscapeCommandline", "EnableSSHKeysign", "EscapeChar", "FingerprintHash",
            "ForkAfterAuthentication", "ForwardAgent", "ForwardX11", "ForwardX11Timeout",
            "ForwardX11Trusted", "GlobalKnownHostsFile", "GSSAPIAuthentication",
            "GSSAPIClientIdentity", "GSSAPIDelegateCredentials", "GSSAPIKeyExchange",
            "GSSAPIRenewalForcesRekey", "GSSAPIServerIdentity", "GSSAPITrustDns",
            "GSSAPIKexAlgorithms", "HashKnownHosts", "HostbasedAcceptedAlgorithms",
            "HostbasedAuthentication", "HostKeyAlgorithms", "HostKeyAlias", "IdentityAgent",
            "IPQoS", "KbdInteractiveAuthentication", "KbdInteractiveDevices", "KexAlgorithms",
            "KnownHostsCommand", "LocalCommand", "LogLevel", "LogVerbose", "MACs",
            "NoHostAuthenticationForLocalhost", "NumberOfPasswordPrompts",
            "ObscureKeystrokeTiming", "PasswordAuthentication", "PermitLocalCommand",
            "PermitRemoteOpen", "PKCS11Provider", "PreferredAuthentications", "ProxyCommand",
            "ProxyJump", "ProxyUseFdpass", "PubkeyAcceptedAlgorithms", "PubkeyAuthentication",
            "RekeyLimit", "RemoteCommand", "RequestTTY", "RequiredRSASize", "RevokedHostKeys",
            "SecurityKeyProvider", "SendEnv", "SessionType", "SetEnv", "StdinNull",
            "StreamLocalBindMask", "StreamLocalBindUnlink", "SyslogFacility", "Tag",
            "TCPKeepAlive", "Tunnel", "TunnelDevice", "UpdateHostKeys", "VerifyHostKeyDNS",
            "VisualHostKey", "XAuthLocation",
            // Aliases and old names OpenSSH still accepts.
            "ChallengeResponseAuthentication", "DSAAuthentication", "HostbasedKeyTypes",
            "KeepAlive", "PubkeyAcceptedKeyTypes", "SkeyAuthentication", "TISAuthentication",
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
