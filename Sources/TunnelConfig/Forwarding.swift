// Port-forwarding specifications: LocalForward, RemoteForward, DynamicForward.
//
// The syntax follows OpenSSH's parse_forward (misc.c): the two arguments are
// joined with ':' and split into at most four fields; a field in [brackets]
// is taken literally (that is how IPv6 addresses are written); a field
// containing '/' is a Unix socket path where OpenSSH's positional rules allow one.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Where a forward listens: a TCP port or a Unix-domain socket.
public enum ForwardListener: Sendable, Hashable, CustomStringConvertible {
    case tcp(bind: BindAddress, port: Int)
    /// A socket path, as written (OpenSSH does not expand `~` or tokens in it).
    case unixSocket(path: String)

    /// `localhost:8080`, `[::1]:8080`, `/run/app.sock`.
    public var description: String {
        switch self {
        case .tcp(let bind, let port): return "\(bind):\(port)"
        case .unixSocket(let path): return path
        }
    }
}

/// Where a forwarded connection goes: a TCP host and port, or a Unix-domain
/// socket (for a LocalForward, a socket on the server, opened as OpenSSH's
/// `direct-streamlocal@openssh.com` channel).
public enum ForwardTarget: Sendable, Hashable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unixSocket(path: String)

    /// `db:5432`, `[fe80::1]:80`, `/var/run/docker.sock`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): return "\(ForwardSyntax.bracketed(host)):\(port)"
        case .unixSocket(let path): return path
        }
    }
}

/// `LocalForward [bind:]port host:hostport`: listen locally, connect from the
/// server. Either side may be a Unix socket (`LocalForward /tmp/d.sock
/// /var/run/docker.sock`).
public struct ForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public var listener: ForwardListener
    public var target: ForwardTarget
    public var location: SourceLocation

    /// A TCP-to-TCP forward (the only kind before socket forwards were read).
    public init(bind: BindAddress, listenPort: Int, targetHost: String, targetPort: Int, location: SourceLocation) {
        self.listener = .tcp(bind: bind, port: listenPort)
        self.target = .tcp(host: targetHost, port: targetPort)
        self.location = location
    }

    public init(listener: ForwardListener, target: ForwardTarget, location: SourceLocation) {
        self.listener = listener
        self.target = target
        self.location = location
    }

    /// True when either side is a Unix socket: an engine that only forwards
    /// TCP must skip this forward (the TCP views below are placeholders then).
    public var isUnixSocket: Bool {
        if case .unixSocket = listener { return true }
        if case .unixSocket = target { return true }
        return false
    }

    // TCP views, kept for the engine written before socket forwards existed.
    // For a socket side they read `.loopback`/0 and the path/0: check
    // `isUnixSocket` first.

    /// The TCP bind address; `.loopback` for a socket listener.
    public var bind: BindAddress {
        get { if case .tcp(let bind, _) = listener { return bind } else { return .loopback } }
        set { if case .tcp(_, let port) = listener { listener = .tcp(bind: newValue, port: port) } }
    }

    /// The TCP port listened on; 0 for a socket listener.
    public var listenPort: Int {
        get { if case .tcp(_, let port) = listener { return port } else { return 0 } }
        set { if case .tcp(let bind, _) = listener { listener = .tcp(bind: bind, port: newValue) } }
    }

    /// The TCP target host; the socket path for a socket target.
    public var targetHost: String {
        get {
            switch target {
            case .tcp(let host, _): return host
            case .unixSocket(let path): return path
            }
        }
        set { if case .tcp(_, let port) = target { target = .tcp(host: newValue, port: port) } }
    }

    /// The TCP target port; 0 for a socket target.
    public var targetPort: Int {
        get { if case .tcp(_, let port) = target { return port } else { return 0 } }
        set { if case .tcp(let host, _) = target { target = .tcp(host: host, port: newValue) } }
    }

    /// `localhost:8080 -> db:5432`, `[::1]:8080 -> [fe80::1]:80`, `/tmp/d.sock -> /var/run/docker.sock`.
    public var description: String {
        "\(listener) -> \(target)"
    }
}

/// `RemoteForward [bind:]port host:hostport` (the server listens, we connect),
/// or `RemoteForward [bind:]port` alone (the server listens, we act as a SOCKS proxy).
/// The server side may be a socket path (`RemoteForward /run/user/1000/gnupg/S.gpg-agent ...`),
/// and so may our side.
public struct RemoteForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public enum Target: Sendable, Hashable {
        case host(String, port: Int)
        case socks
        /// A Unix socket on this machine.
        case unixSocket(String)
    }

    /// Address on the server. `.loopback` when none was given: the server
    /// decides (its own GatewayPorts); `.any` for `*` or empty. `.loopback`
    /// too for a socket listener (see `listenSocketPath`).
    public var bind: BindAddress
    /// 0 asks the server to choose a port; 0 for a socket listener.
    public var listenPort: Int
    public var target: Target
    public var location: SourceLocation
    /// The bind address exactly as written (nil when none was): `bind` cannot
    /// tell `localhost:9000` from `9000`, nor `*:9000` from `:9000`, but
    /// `ssh -G` prints them differently and OpenSSH compares forwards by it.
    public var bindAsWritten: String?
    /// The socket path the server listens on, when it listens on a socket
    /// (which needs `forwarded-streamlocal@openssh.com` channels from the server).
    public var listenSocketPath: String?

    public init(bind: BindAddress, listenPort: Int, target: Target, location: SourceLocation,
                bindAsWritten: String? = nil, listenSocketPath: String? = nil) {
        self.bind = bind
        self.listenPort = listenPort
        self.target = target
        self.location = location
        self.bindAsWritten = bindAsWritten
        self.listenSocketPath = listenSocketPath
    }

    /// True when either side is a Unix socket.
    public var isUnixSocket: Bool {
        if listenSocketPath != nil { return true }
        if case .unixSocket = target { return true }
        return false
    }

    /// `remote localhost:9000 -> localhost:3000`, `remote *:1080 -> socks`, `remote /r.sock -> /l.sock`.
    public var description: String {
        let to: String
        switch target {
        case .host(let h, let p): to = "\(ForwardSyntax.bracketed(h)):\(p)"
        case .socks: to = "socks"
        case .unixSocket(let path): to = path
        }
        return "remote \(listenSocketPath ?? "\(bind):\(listenPort)") -> \(to)"
    }
}

/// `DynamicForward [bind:]port`: a local SOCKS proxy (OpenSSH also takes a
/// socket path to listen on).
public struct DynamicForwardSpec: Sendable, Hashable, CustomStringConvertible {
    public var bind: BindAddress
    /// 0 for a socket listener.
    public var listenPort: Int
    public var location: SourceLocation
    /// Set when the proxy listens on a Unix socket instead of a port.
    public var listenSocketPath: String?

    public init(bind: BindAddress, listenPort: Int, location: SourceLocation, listenSocketPath: String? = nil) {
        self.bind = bind
        self.listenPort = listenPort
        self.location = location
        self.listenSocketPath = listenSocketPath
    }

    public var isUnixSocket: Bool { listenSocketPath != nil }

    /// `localhost:1080 -> socks`.
    public var description: String { "\(listenSocketPath ?? "\(bind):\(listenPort)") -> socks" }
}

/// A listener as written: a socket path, or a TCP port with the bind address
/// as written (GatewayPorts decides later what "none" means).
enum WrittenListener: Sendable, Hashable {
    case tcp(bind: String?, port: Int)
    case unixSocket(String)

    func resolved(gatewayPorts: Bool) -> ForwardListener {
        switch self {
        case .tcp(let bind, let port): return .tcp(bind: ForwardSyntax.bind(bind, gatewayPorts: gatewayPorts), port: port)
        case .unixSocket(let path): return .unixSocket(path: path)
        }
    }
}

/// A forward as written, before GatewayPorts decides what "no bind address" means.
struct WrittenLocalForward: Sendable, Hashable {
    var listener: WrittenListener
    var target: ForwardTarget
    var location: SourceLocation

    func resolved(gatewayPorts: Bool) -> ForwardSpec {
        ForwardSpec(listener: listener.resolved(gatewayPorts: gatewayPorts), target: target, location: location)
    }
}

struct WrittenDynamicForward: Sendable, Hashable {
    var listener: WrittenListener
    var location: SourceLocation

    func resolved(gatewayPorts: Bool) -> DynamicForwardSpec {
        switch listener.resolved(gatewayPorts: gatewayPorts) {
        case .tcp(let bind, let port):
            return DynamicForwardSpec(bind: bind, listenPort: port, location: location)
        case .unixSocket(let path):
            return DynamicForwardSpec(bind: .loopback, listenPort: 0, location: location, listenSocketPath: path)
        }
    }
}

enum ForwardSyntax {
    struct Failure: Error, Equatable {
        var message: String
        /// OpenSSH accepts the value but tunnel cannot act on it (a service name for a port).
        var unusable = false
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

    /// OpenSSH's limit on a socket path (sizeof sun_path on Linux, minus the NUL).
    static let maximumSocketPathLength = 107

    /// What the fields of a forward say, by OpenSSH's positional rules
    /// (parse_forward): a field containing `/` outside brackets is a socket path.
    private enum Target {
        case tcp(host: String, port: Int)
        case unixSocket(String)
        case socks
    }

    /// `fields` split from the joined arguments; `dynamic`: only a listener
    /// is expected (DynamicForward, one-argument RemoteForward); `remote`:
    /// the server listens, so port 0 (server's choice) is allowed.
    private static func forward(_ fields: [Field], original: String, dynamic: Bool, remote: Bool)
        throws(Failure) -> (WrittenListener, Target)
    {
        let expected = dynamic ? "expected [bind_address:]port or a socket path"
            : "expected [bind_address:]port host:hostport, with a socket path on either side"
        func bad() -> Failure {
            Failure(message: "bad forwarding specification \(original.quotedForMessage): \(expected)")
        }
        func listenPort(_ text: String) throws(Failure) -> Int {
            try parsePort(text, allowZero: remote, what: "listen port")
        }
        func targetPort(_ text: String) throws(Failure) -> Int {
            try parsePort(text, allowZero: false, what: "target port")
        }
        func path(_ text: String) throws(Failure) -> String {
            if text.utf8.count > maximumSocketPathLength {
                throw Failure(message: "socket path \(text.quotedForMessage) is too long (over \(maximumSocketPathLength) bytes)")
            }
            return text
        }
        let listener: WrittenListener, target: Target
        switch fields.count {
        case 1 where dynamic:
            listener = fields[0].isPath ? .unixSocket(try path(fields[0].text)) : .tcp(bind: nil, port: try listenPort(fields[0].text))
            target = .socks
        case 2 where fields[0].isPath && fields[1].isPath && !dynamic:
            (listener, target) = (.unixSocket(try path(fields[0].text)), .unixSocket(try path(fields[1].text)))
        case 2 where fields[1].isPath && !dynamic:
            (listener, target) = (.tcp(bind: nil, port: try listenPort(fields[0].text)), .unixSocket(try path(fields[1].text)))
        case 2 where dynamic:
            try checkHost(fields[0].text, what: "bind address")
            (listener, target) = (.tcp(bind: fields[0].text, port: try listenPort(fields[1].text)), .socks)
        case 3 where !dynamic:
            if fields[0].isPath {
                try checkHost(fields[1].text, what: "target host")
                listener = .unixSocket(try path(fields[0].text))
                target = .tcp(host: fields[1].text, port: try targetPort(fields[2].text))
            } else if fields[2].isPath {
                try checkHost(fields[0].text, what: "bind address")
                listener = .tcp(bind: fields[0].text, port: try listenPort(fields[1].text))
                target = .unixSocket(try path(fields[2].text))
            } else {
                try checkHost(fields[1].text, what: "target host")
                listener = .tcp(bind: nil, port: try listenPort(fields[0].text))
                target = .tcp(host: fields[1].text, port: try targetPort(fields[2].text))
            }
        case 4 where !dynamic:
            try checkHost(fields[0].text, what: "bind address")
            try checkHost(fields[2].text, what: "target host")
            listener = .tcp(bind: fields[0].text, port: try listenPort(fields[1].text))
            target = .tcp(host: fields[2].text, port: try targetPort(fields[3].text))
        default:
            throw bad()
        }
        return (listener, target)
    }

    static func parseLocal(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> WrittenLocalForward
    {
        guard arguments.count >= 2 else {
            throw Failure(message: "missing target: expected [bind_address:]port host:hostport")
        }
        guard arguments.count == 2 else { throw extraArguments(arguments, allowed: 2) }
        let original = arguments.joined(separator: " ")
        let fields = try split(arguments.joined(separator: ":"), environment: environment)
        let (listener, target) = try forward(fields, original: original, dynamic: false, remote: false)
        switch target {
        case .tcp(let host, let port):
            return WrittenLocalForward(listener: listener, target: .tcp(host: host, port: port), location: location)
        case .unixSocket(let path):
            return WrittenLocalForward(listener: listener, target: .unixSocket(path: path), location: location)
        case .socks:
            throw Failure(message: "bad forwarding specification \(original.quotedForMessage): expected [bind_address:]port host:hostport")
        }
    }

    static func parseRemote(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> RemoteForwardSpec
    {
        guard arguments.count <= 2 else { throw extraArguments(arguments, allowed: 2) }
        let fields = try split(arguments.joined(separator: ":"), environment: environment)
        // One argument: a remote dynamic forward (the server listens, we answer SOCKS).
        let (listener, written) = try forward(fields, original: arguments.joined(separator: " "),
                                              dynamic: arguments.count == 1, remote: true)
        let target: RemoteForwardSpec.Target
        switch written {
        case .tcp(let host, let port): target = .host(host, port: port)
        case .unixSocket(let path): target = .unixSocket(path)
        case .socks: target = .socks
        }
        switch listener {
        case .tcp(let bind, let port):
            return RemoteForwardSpec(bind: bind.map(BindAddress.init(explicit:)) ?? .loopback, listenPort: port,
                                     target: target, location: location, bindAsWritten: bind)
        case .unixSocket(let path):
            return RemoteForwardSpec(bind: .loopback, listenPort: 0, target: target, location: location,
                                     listenSocketPath: path)
        }
    }

    static func parseDynamic(_ arguments: [String], environment: [String: String], at location: SourceLocation)
        throws(Failure) -> WrittenDynamicForward
    {
        guard arguments.count == 1 else { throw extraArguments(arguments, allowed: 1) }
        let fields = try split(arguments[0], environment: environment)
        let (listener, _) = try forward(fields, original: arguments[0], dynamic: true, remote: false)
        return WrittenDynamicForward(listener: listener, location: location)
    }

    private static func extraArguments(_ arguments: [String], allowed: Int) -> Failure {
        Failure(message: "too many arguments (\(arguments.count), at most \(allowed)): \(arguments.joined(separator: " ").quotedForMessage)")
    }

    private static func checkHost(_ host: String?, what: String) throws(Failure) {
        guard let host else { return }
        // OpenSSH reads an empty target and fails when connecting.
        if what == "target host" && host.isEmpty { throw Failure(message: "missing target host", unusable: true) }
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
        // A known service name is valid for OpenSSH (getservbyname), so it only
        // makes the hosts that use it unusable; anything else is an error for both.
        if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0 == "-") }) && getservbyname(text, "tcp") != nil {
            throw Failure(message: "bad \(what) \(text.quotedForMessage): service names are not supported, give the port number (\(range))",
                          unusable: true)
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
                // A bracketed field is a host or address, never a path (as in OpenSSH).
                fields.append(Field(text: String(inside), isPath: false))
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
