// Scalar values of ssh_config keywords, accepted in the spellings OpenSSH accepts.

/// How to treat a server host key that is not in known_hosts (ssh_config(5)).
public enum StrictHostKeyChecking: String, Sendable {
    /// Refuse unknown and changed keys.
    case yes
    /// Add unknown keys, refuse changed ones.
    case acceptNew = "accept-new"
    /// Add unknown keys, and connect even when a key changed (with restrictions).
    case no
    /// Ask the user (OpenSSH's default). A background tunnel cannot ask, so it refuses.
    case ask

    /// `yes`/`true`, `no`/`false`/`off`, `ask`, `accept-new`; any case.
    init?(configValue: String) {
        switch configValue.lowercased() {
        case "yes", "true": self = .yes
        case "no", "false", "off": self = .no
        case "ask": self = .ask
        case "accept-new": self = .acceptNew
        default: return nil
        }
    }
}

enum ValueSyntax {
    /// `yes`/`true` or `no`/`false`, any case (OpenSSH's multistate_flag).
    static func flag(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "yes", "true": return true
        case "no", "false": return false
        default: return nil
        }
    }

    /// A non-negative decimal integer that fits an Int32 (OpenSSH's atoi_err).
    static func count(_ text: String) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }),
              let value = Int(text), value <= Int(Int32.max) else { return nil }
        return value
    }

    /// OpenSSH's StreamLocalBindMask: octal digits (strtol base 8; trailing
    /// text is ignored, as there), at most 0777.
    static func octalMask(_ text: String) -> Int? {
        var digits = Substring(text.drop { $0 == " " || $0 == "\t" })
        if digits.first == "+" { digits = digits.dropFirst() }
        let octal = digits.prefix { $0 >= "0" && $0 <= "7" }
        guard !octal.isEmpty, octal.count <= 12, let value = Int(octal, radix: 8), value <= 0o777 else { return nil }
        return value
    }

    /// OpenSSH time format (convtime): `90`, `90s`, `1m30s`, `2h`, `1d`, `1w`;
    /// units in either case; seconds when none. `nil` when malformed or too big.
    static func seconds(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var number = ""
        func add(_ multiplier: Int) -> Bool {
            guard let n = Int(number) else { return false }
            let (product, overflow1) = n.multipliedReportingOverflow(by: multiplier)
            let (sum, overflow2) = total.addingReportingOverflow(product)
            guard !overflow1, !overflow2, sum <= Int(Int32.max) else { return false }
            total = sum
            number = ""
            return true
        }
        for c in text {
            if c.isASCII && c.isNumber {
                number.append(c)
                continue
            }
            let multiplier: Int
            switch c {
            case "s", "S": multiplier = 1
            case "m", "M": multiplier = 60
            case "h", "H": multiplier = 3600
            case "d", "D": multiplier = 86400
            case "w", "W": multiplier = 604_800
            default: return nil
            }
            guard !number.isEmpty, add(multiplier) else { return nil }
        }
        if !number.isEmpty, !add(1) { return nil }
        return total
    }
}

/// Which address family to connect with (`AddressFamily`).
public enum AddressFamily: String, Sendable, Hashable {
    /// IPv4 or IPv6, whichever the name resolves to (OpenSSH's default).
    case any
    /// IPv4 only.
    case inet
    /// IPv6 only.
    case inet6

    /// `any`, `inet`, `inet6`; any case.
    init?(configValue: String) {
        self.init(rawValue: configValue.lowercased())
    }
}

/// A user authentication method name, as `PreferredAuthentications` lists them.
public enum AuthenticationMethod: String, Sendable, Hashable, CaseIterable {
    case gssapiWithMIC = "gssapi-with-mic"
    /// Debian's and several distributions' GSSAPI key exchange patch.
    case gssapiKeyex = "gssapi-keyex"
    case hostbased
    case publickey
    case keyboardInteractive = "keyboard-interactive"
    case password
    case none

    /// The order OpenSSH tries methods in when `PreferredAuthentications` is not set.
    public static let openSSHDefaultOrder: [AuthenticationMethod] = [
        .gssapiWithMIC, .hostbased, .publickey, .keyboardInteractive, .password,
    ]
}

/// Where to find an SSH agent (`IdentityAgent`).
public enum IdentityAgent: Sendable, Hashable {
    /// `IdentityAgent none`: use no agent, whatever SSH_AUTH_SOCK says.
    case disabled
    /// `SSH_AUTH_SOCK` or the older `$NAME` form: the socket path is in this
    /// environment variable, read when connecting.
    case environment(String)
    /// A socket path, with `~`, `%` tokens and `${VAR}` already expanded.
    case socket(String)
}

/// One jump host of `ProxyJump`, in the order written (the first is connected to first).
public struct JumpHost: Sendable, Hashable, CustomStringConvertible {
    /// nil: the user this host's own configuration gives.
    public var user: String?
    /// As written, without the brackets around an IPv6 address.
    public var host: String
    /// nil: the port this host's own configuration gives.
    public var port: Int?

    public init(user: String? = nil, host: String, port: Int? = nil) {
        self.user = user
        self.host = host
        self.port = port
    }

    /// `[user@]host[:port]`, with the host in brackets when it is numeric
    /// (contains `:` or only digits and dots), as `ssh -G` prints it.
    public var description: String {
        let numeric = host.contains(":") || host.allSatisfy { $0 == "." || ($0.isASCII && $0.isNumber) }
        var text = user.map { $0 + "@" } ?? ""
        text += numeric ? "[\(host)]" : host
        if let port { text += ":\(port)" }
        return text
    }
}

/// `PubkeyAuthentication`: OpenSSH 9.x also accepts `unbound` and `host-bound`
/// (restrictions on agent-forwarded keys), which count as "yes" for a client
/// without agent forwarding.
enum PubkeyAuthenticationMode: Sendable {
    case yes, no, unbound, hostBound

    init?(configValue: String) {
        switch configValue.lowercased() {
        case "yes", "true": self = .yes
        case "no", "false": self = .no
        case "unbound": self = .unbound
        case "host-bound": self = .hostBound
        default: return nil
        }
    }

    var enabled: Bool { self != .no }

    /// How `ssh -G` prints it.
    var sshDashG: String {
        switch self {
        case .yes: return "true"
        case .no: return "false"
        case .unbound: return "unbound"
        case .hostBound: return "host-bound"
        }
    }
}

/// `ProxyJump` as written: its hops, and the text before the last comma
/// (`ssh -G` prints that part as written and only the last hop normalised).
struct WrittenProxyJump: Sendable {
    /// Empty for `ProxyJump none`.
    var hops: [JumpHost]
    /// Everything before the last comma, as written; nil for a single hop.
    var leadingText: String?
}
