import SSH2
import TunnelConfig

/// Which algorithms a session offers, per kind, most wanted first: tunnel's own cipher order (the fastest the
/// linked libssh2 has), then the config's `Ciphers`, `MACs`, `KexAlgorithms` and `HostKeyAlgorithms` laid over it
/// (OpenSSH's list syntax, see `AlgorithmList`), always cut down to what the library supports.
///
/// Pure: the supported lists come in as values (`linked` reads them from the linked libssh2), so tests can feed it
/// what libssh2 1.10, 1.11 and 1.11.1 report.
public struct AlgorithmPreference: Sendable, Equatable {
    /// Per kind, the names to offer; a kind that is absent keeps the library's own list (`HostKeyAlgorithms`
    /// absent: the engine prefers the key types known_hosts has for the server, as OpenSSH does).
    public var offered: [AlgorithmKind: [String]] = [:]
    /// Config lines that leave nothing to offer: the host cannot connect (`tunnel check` fails on them).
    public var errors: [ConfigError] = []
    /// Config lines naming algorithms the library lacks: those names are dropped.
    public var warnings: [ConfigError] = []

    /// Ciphers in tunnel's order: AEAD first (no separate MAC pass; AES-GCM runs on AES-NI and CLMUL, chacha20 is
    /// fast without them), then AES-CTR. libssh2 has AES-GCM from 1.11.0 and chacha20-poly1305 from 1.11.1; what
    /// this list names and the library lacks is skipped. Everything else the library has follows, in its order.
    public static let preferredCiphers = [
        "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
        "aes128-ctr", "aes192-ctr", "aes256-ctr",
    ]

    /// The default order of one kind: for ciphers `preferredCiphers` first; for the rest the library's own order
    /// (MACs: with an AEAD cipher none is used; otherwise the MAC is not what limits speed, see the README).
    public static func defaultOrder(_ kind: AlgorithmKind, supported: [String]) -> [String] {
        guard kind == .cipher else { return supported }
        return preferredCiphers.filter(supported.contains) + supported.filter { !preferredCiphers.contains($0) }
    }

    /// The preference for a host's config lines, given what the library supports per kind. `libraryName` names the
    /// library in messages ("libssh2 1.10.0").
    public init(lists: [AlgorithmKind: AlgorithmList], supported: [AlgorithmKind: [String]], libraryName: String) {
        for kind in AlgorithmKind.allCases {
            let all = supported[kind] ?? []
            let defaults = Self.defaultOrder(kind, supported: all)
            guard let list = lists[kind] else {
                if kind == .cipher, !defaults.isEmpty { offered[kind] = defaults }
                continue
            }
            let (names, unsupported) = list.applied(defaults: defaults, supported: all)
            if names.isEmpty {
                errors.append(ConfigError(location: list.location, message: "\(kind.keyword) \(list): leaves nothing "
                    + "\(libraryName) supports (it has: \(all.joined(separator: ",")))"))
                continue
            }
            if !unsupported.isEmpty {
                warnings.append(ConfigError(location: list.location, message: "\(kind.keyword): \(libraryName) does not "
                    + "support \(unsupported.joined(separator: ", ")); ignored"))
            }
            offered[kind] = names
        }
    }

    /// For a host, with what the linked libssh2 supports.
    public static func linked(_ lists: [AlgorithmKind: AlgorithmList]) -> AlgorithmPreference {
        AlgorithmPreference(lists: lists, supported: linkedSupport, libraryName: "libssh2 \(SSH2Library.version)")
    }

    /// What the linked libssh2 supports, per kind.
    public static var linkedSupport: [AlgorithmKind: [String]] {
        var table: [AlgorithmKind: [String]] = [:]
        for (kind, names) in SSH2Library.supportedAlgorithms { table[AlgorithmKind(kind)] = names }
        return table
    }

    /// The ciphers of `preferredCiphers` the library lacks, e.g. libssh2 1.10's AES-GCM and chacha20-poly1305.
    public static func missingCiphers(supported: [String]) -> [String] {
        preferredCiphers.filter { !supported.contains($0) }
    }

    /// One line saying what the linked libssh2 lacks and what tunnel offers first instead; nil when it lacks none.
    public static var linkedCipherNote: String? {
        let ciphers = linkedSupport[.cipher] ?? []
        let missing = missingCiphers(supported: ciphers)
        guard !missing.isEmpty else { return nil }
        let first = defaultOrder(.cipher, supported: ciphers).first ?? "?"
        return "lacks \(missing.joined(separator: ", ")) (AES-GCM needs libssh2 1.11, chacha20-poly1305 1.11.1): "
            + "tunnel offers \(first) first"
    }
}

extension AlgorithmKind {
    init(_ kind: SSHAlgorithmKind) {
        switch kind {
        case .keyExchange: self = .keyExchange
        case .hostKey: self = .hostKey
        case .cipher: self = .cipher
        case .mac: self = .mac
        }
    }

    var ssh2: SSHAlgorithmKind {
        switch self {
        case .keyExchange: return .keyExchange
        case .hostKey: return .hostKey
        case .cipher: return .cipher
        case .mac: return .mac
        }
    }
}
