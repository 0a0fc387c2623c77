// Port-forwarding specifications: LocalForward, RemoteForward, DynamicForward.
//
// The syntax follows OpenSSH's parse_forward (misc.c): the two arguments are
// joined with ':' and split into at most four fields; a field in [brackets]
// is taken literally (that is how IPv6 addresses are written); a field
// containing '/' is a Unix socket path, which tunnel does not forward.

/// Which local addresses a listener binds.
public enum BindAddress: Sendable, Hashable, CustomStringConvertible {
    /// Loopback only (`localhost` semantics: 127.0.0.1 and ::1). The default
    /// unless GatewayPorts is on.
    case loopback
    /// Every interface: `*` or an empty bind address (or the default with GatewayPorts yes).
    case any
    /// A literal address or name; IPv6 without brackets.
    case address(String)

    /// From an explicitly written bind address.
    init(explicit text: String) {
        switch text {
        case "", "*": self = .any
        case "localhost": self = .loopback
        default: self = .address(text)
        }
    }

    /// `localhost`, `*`, `10.0.0.1`, `[::1]`.
    public var description: String {
        switch self {
        case .loopback: return "localhost"
        case .any: return "*"
        case .address(let a): return ForwardSyntax.bracketed(a)
        }
    }
}

/// `LocalForward [bind:]port host:hostport`: listen locally, connect from the server.
public struct ForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public var bind: BindAddress
    public var listenPort: Int
    public var targetHost: String
    public var targetPort: Int
    public var location: SourceLocation

    public init(bind: BindAddress, listenPort: Int, targetHost: String, targetPort: Int, location: SourceLocation) {
        self.bind = bind
        self.listenPort = listenPort
        self.targetHost = targetHost
        self.targetPort = targetPort
        self.location = location
    }

    /// `localhost:8080 -> db:5432`, `[::1]:8080 -> [fe80::1]:80`, `*:8080 -> web:80`.
    public var description: String {
        "\(bind):\(listenPort) -> \(ForwardSyntax.bracketed(targetHost)):\(targetPort)"
    }
}

/// `RemoteForward [bind:]port host:hostport` (the server listens, we connect),
/// or `RemoteForward [bind:]port` alone (the server listens, we act as a SOCKS proxy).
public struct RemoteForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public enum Target: Sendable, Hashable {
        case host(String, port: Int)
        case socks
    }

    /// Address on the server. `.loopback` when none was given: the server
    /// decides (its own GatewayPorts); `.any` for `*` or empty.
    public var bind: BindAddress
    /// 0 asks the server to choose a port.
    public var listenPort: Int
    public var target: Target
    public var location: SourceLocation
    /// The bind address exactly as written (nil when none was): `bind` cannot
    /// tell `localhost:9000` from `9000`, nor `*:9000` from `:9000`, but
    /// `ssh -G` prints them differently and OpenSSH compares forwards by it.
    public var bindAsWritten: String?

    public init(bind: BindAddress, listenPort: Int, target: Target, location: SourceLocation,
                bindAsWritten: String? = nil) {
        self.bind = bind
        self.listenPort = listenPort
        self.target = target
        self.location = location
        self.bindAsWritten = bindAsWritten
    }

    /// `remote localhost:9000 -> localhost:3000`, `remote *:1080 -> socks`.
    public var description: String {
        let to: String
        switch target {
        case .host(let h, let p): to = "\(ForwardSyntax.bracketed(h)):\(p)"
        case .socks: to = "socks"
        }
        return "remote \(bind):\(listenPort) -> \(to)"
    }
}

/// `DynamicForward [bind:]port`: a local SOCKS proxy.
public struct DynamicForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public var bind: BindAddress
    public var listenPort: Int
    public var location: SourceLocation

    public init(bind: BindAddress, listenPort: Int, location: SourceLocation) {
        self.bind = bind
        self.listenPort = listenPort
        self.location = location
    }

    /// `localhost:1080 -> socks`.
    public var description: String { "\(bind):\(listenPort) -> socks" }
}

/// A forward as written, before GatewayPorts decides what "no bind address" means.
struct WrittenLocalForward: Sendable, Hashable {
    var bind: String?
    var listenPort: Int
    var targetHost: String
    var targetPort: Int
    var location: SourceLocation

    func resolved(gatewayPorts: Bool) -> ForwardSpec {
        ForwardSpec(bind: ForwardSyntax.bind(bind, gatewayPorts: gatewayPorts), listenPort: listenPort,
                    targetHost: targetHost, targetPort: targetPort, location: location)
    }
}

struct WrittenDynamicForward: Sendable, Hashable {
    var bind: String?
    var listenPort: Int
    var location: SourceLocation

    func resolved(gatewayPorts: Bool) -> DynamicForwardSpec {
        DynamicForwardSpec(bind: ForwardSyntax.bind(bind, gatewayPorts: gatewayPorts), listenPort: listenPort,
                           location: location)
    }
}

enum ForwardSyntax {
    struct Failure: Error, Equatable {
        var message: String
    }

    private struct Field {
        var text: String
        var isPath: Bool
    }

    /// OpenSSH (channels.c) binds a listener with no explicit address to
    /// loopback, or to every interface when GatewayPorts is on.
    static func bind(_ written: String?, gatewayPorts: Bool) -> BindAddress {
        guard let written else { return gatewayPorts ? .any : .loopback }
        return BindAddress(explicit: written)
    }

    static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    /// OpenSSH's host name limit (NI_MAXHOST).
    private static let maximumHostLength = 1024

    static func parseLocal(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> WrittenLocalForward
    {
        guard arguments.count >= 2 else {
            throw Failure(message: "missing target: expected [bind_address:]port host:hostport")
        }
        guard arguments.count == 2 else { throw extraArguments(arguments, allowed: 2) }
        let fields = try split(arguments.joined(separator: ":"), environment: environment)
        try rejectPaths(fields)
        let bind: String?, listen: String, host: String, port: String
        switch fields.count {
        case 3: (bind, listen, host, port) = (nil, fields[0].text, fields[1].text, fields[2].text)
        case 4: (bind, listen, host, port) = (fields[0].text, fields[1].text, fields[2].text, fields[3].text)
        default:
            throw Failure(message: "bad forwarding specification \(arguments.joined(separator: " ").quotedForMessage): expected [bind_address:]port host:hostport")
        }
        try checkHost(bind, what: "bind address")
        let listenPort = try parsePort(listen, allowZero: false, what: "listen port")
        try checkHost(host, what: "target host")
        let targetPort = try parsePort(port, allowZero: false, what: "target port")
        return WrittenLocalForward(bind: bind, listenPort: listenPort, targetHost: host, targetPort: targetPort, location: location)
    }

    static func parseRemote(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> RemoteForwardSpec
    {
        guard arguments.count <= 2 else { throw extraArguments(arguments, allowed: 2) }
        let fields = try split(arguments.joined(separator: ":"), environment: environment)
        try rejectPaths(fields)
        if arguments.count == 1 {
            // Remote dynamic forward: the server listens, we answer SOCKS.
            let (bind, listenPort) = try listener(fields, original: arguments[0], allowZero: true)
            return RemoteForwardSpec(bind: bind.map(BindAddress.init(explicit:)) ?? .loopback,
                                     listenPort: listenPort, target: .socks, location: location, bindAsWritten: bind)
        }
        let bind: String?, listen: String, host: String, port: String
        switch fields.count {
        case 3: (bind, listen, host, port) = (nil, fields[0].text, fields[1].text, fields[2].text)
        case 4: (bind, listen, host, port) = (fields[0].text, fields[1].text, fields[2].text, fields[3].text)
        default:
            throw Failure(message: "bad forwarding specification \(arguments.joined(separator: " ").quotedForMessage): expected [bind_address:]port host:hostport")
        }
        try checkHost(bind, what: "bind address")
        // Port 0 asks the server to pick one (ssh -R 0:...).
        let listenPort = try parsePort(listen, allowZero: true, what: "listen port")
        try checkHost(host, what: "target host")
        let targetPort = try parsePort(port, allowZero: false, what: "target port")
        return RemoteForwardSpec(bind: bind.map(BindAddress.init(explicit:)) ?? .loopback, listenPort: listenPort,
                                 target: .host(host, port: targetPort), location: location, bindAsWritten: bind)
    }

    static func parseDynamic(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> WrittenDynamicForward
    {
        guard arguments.count == 1 else { throw extraArguments(arguments, allowed: 1) }
        let fields = try split(arguments[0], environment: environment)
        try rejectPaths(fields)
        let (bind, listenPort) = try listener(fields, original: arguments[0], allowZero: false)
        return WrittenDynamicForward(bind: bind, listenPort: listenPort, location: location)
    }

    /// `[bind:]port` alone.
    private static func listener(_ fields: [Field], original: String, allowZero: Bool) throws(Failure) -> (String?, Int) {
        switch fields.count {
        case 1:
            return (nil, try parsePort(fields[0].text, allowZero: allowZero, what: "listen port"))
        case 2:
            try checkHost(fields[0].text, what: "bind address")
            return (fields[0].text, try parsePort(fields[1].text, allowZero: allowZero, what: "listen port"))
        default:
            throw Failure(message: "bad listener \(original.quotedForMessage): expected [bind_address:]port")
        }
    }

    private static func extraArguments(_ arguments: [String], allowed: Int) -> Failure {
        Failure(message: "too many arguments (\(arguments.count), at most \(allowed)): \(arguments.joined(separator: " ").quotedForMessage)")
    }

    private static func rejectPaths(_ fields: [Field]) throws(Failure) {
        guard let path = fields.first(where: \.isPath) else { return }
        throw Failure(message: "\(path.text.quotedForMessage) is a Unix socket path (it contains \"/\"); unix socket forwards are not supported. Write host:port (IPv6 as [addr]:port); OpenSSH no longer accepts the old host/port form either")
    }

    private static func checkHost(_ host: String?, what: String) throws(Failure) {
        guard let host else { return }
        if what == "target host" && host.isEmpty { throw Failure(message: "missing target host") }
        if host.utf8.count > maximumHostLength { throw Failure(message: "\(what) is too long (over \(maximumHostLength) bytes)") }
    }

    /// A TCP port: decimal 1-65535 (0 only where the server may choose).
    /// Service names like `http` are refused: OpenSSH would look them up in
    /// /etc/services, which differs between machines.
    static func parsePort(_ text: String, allowZero: Bool, what: String) throws(Failure) -> Int {
        if text.isEmpty { throw Failure(message: "missing \(what)") }
        let range = allowZero ? "0-65535" : "1-65535"
        if text.allSatisfy({ $0.isASCII && $0.isNumber }) {
            guard let value = Int(text), value <= 65535, allowZero || value > 0 else {
                throw Failure(message: "bad \(what) \(text.quotedForMessage) (must be \(range))")
            }
            return value
        }
        if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "-") }) {
            throw Failure(message: "bad \(what) \(text.quotedForMessage): service names are not supported, give the port number (\(range))")
        }
        throw Failure(message: "bad port \(text.quotedForMessage)")
    }

    /// `${VAR}` expansion, then OpenSSH's field split (parse_fwd_field).
    private static func split(_ spec: String, environment: [String: String]) throws(Failure) -> [Field] {
        let expanded: String
        do {
            expanded = try Expansion.expand(spec, tokens: nil, value: { _ in "" }, environment: environment)
        } catch {
            throw Failure(message: error.message)
        }
        var rest = Substring(expanded.drop(while: { $0 == " " || $0 == "\t" }))
        var fields: [Field] = []
        while !rest.isEmpty && fields.count < 4 {
            if rest.first == "[" {
                // Literal field: up to the matching ']', which must end the field.
                guard let close = rest.firstIndex(of: "]") else {
                    throw Failure(message: "missing \"]\" in \(spec.quotedForMessage)")
                }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                var after = rest[rest.index(after: close)...]
                if after.first == ":" {
                    after = after.dropFirst()
                } else if !after.isEmpty {
                    throw Failure(message: "unexpected text after \"]\" in \(spec.quotedForMessage)")
                }
                fields.append(Field(text: String(inside), isPath: inside.contains("/")))
                rest = after
                continue
            }
            var text = ""
            var isPath = false
            var index = rest.startIndex
            while index < rest.endIndex {
                let c = rest[index]
                if c == "\\" {
                    // A backslash makes the next character ordinary.
                    let next = rest.index(after: index)
                    guard next < rest.endIndex else {
                        throw Failure(message: "trailing backslash in \(spec.quotedForMessage)")
                    }
                    text.append(rest[next])
                    index = rest.index(after: next)
                    continue
                }
                if c == ":" { index = rest.index(after: index); break }
                if c == "/" { isPath = true }
                text.append(c)
                index = rest.index(after: index)
            }
            fields.append(Field(text: text, isPath: isPath))
            rest = rest[index...]
        }
        if !rest.isEmpty {
            throw Failure(message: "bad forwarding specification \(spec.quotedForMessage): too many \":\"-separated fields (at most 4)")
        }
        return fields
    }
}
