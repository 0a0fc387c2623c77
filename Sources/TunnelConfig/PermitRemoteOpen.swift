// `PermitRemoteOpen` (OpenSSH 8.7+): where the connections of a remote dynamic forward (`RemoteForward
// [bind:]port` with no target, for which this side is the SOCKS server) may go.

/// `PermitRemoteOpen any | none | host:port ...`. As ssh_config(5) says: `*` stands for any host or any port;
/// otherwise names are compared as written (no patterns, no address lookups), so `localhost:80` does not permit
/// `127.0.0.1:80`.
public enum PermitRemoteOpen: Sendable, Hashable, CustomStringConvertible {
    /// No restriction (the default).
    case any
    /// Every remote dynamic connection is refused.
    case none
    /// Only these destinations.
    case only([Destination])

    /// One `host:port` of the list. `host` nil: `*` (any host); `port` nil: `*` (any port).
    public struct Destination: Sendable, Hashable, CustomStringConvertible {
        public var host: String?
        public var port: Int?
        /// As written (`[::1]:*`): what `ssh -G` prints.
        public var written: String

        public init(host: String?, port: Int?, written: String) {
            self.host = host
            self.port = port
            self.written = written
        }

        public func permits(host requestedHost: String, port requestedPort: Int) -> Bool {
            (port == nil || port == requestedPort) && (host == nil || host == requestedHost)
        }

        public var description: String { written }
    }

    /// Whether a connection to `host:port` (as the SOCKS client asked for it) may be made.
    public func permits(host: String, port: Int) -> Bool {
        switch self {
        case .any: return true
        case .none: return false
        case .only(let list): return list.contains { $0.permits(host: host, port: port) }
        }
    }

    /// What `ssh -G` prints: `any`, `none`, or the list as written.
    public var description: String {
        switch self {
        case .any: return "any"
        case .none: return "none"
        case .only(let list): return list.map(\.written).joined(separator: " ")
        }
    }

    /// Parses the arguments of one `PermitRemoteOpen` line; the error is the message without the keyword.
    static func parse(_ arguments: [String]) -> Result<PermitRemoteOpen, PermitRemoteOpenSyntaxError> {
        guard !arguments.isEmpty else { return .failure(.init(message: "missing host:port, any or none")) }
        if let word = arguments.first(where: { ["any", "none"].contains($0.lowercased()) }) {
            guard arguments.count == 1 else {
                return .failure(.init(message: "\(word.quotedForMessage) must appear alone"))
            }
            return .success(word.lowercased() == "any" ? .any : .none)
        }
        var list: [Destination] = []
        for argument in arguments {
            let host: Substring, portText: Substring
            if argument.hasPrefix("[") {
                // [IPv6]:port
                guard let close = argument.firstIndex(of: "]"), argument[argument.index(after: close)...].hasPrefix(":") else {
                    return .failure(.init(message: "bad destination \(argument.quotedForMessage) (expected host:port, [address]:port, any or none)"))
                }
                host = argument[argument.index(after: argument.startIndex)..<close]
                portText = argument[argument.index(close, offsetBy: 2)...]
            } else {
                guard let colon = argument.lastIndex(of: ":"), !argument[..<colon].contains(":") else {
                    return .failure(.init(message: "bad destination \(argument.quotedForMessage) (expected host:port, [address]:port, any or none)"))
                }
                host = argument[..<colon]
                portText = argument[argument.index(after: colon)...]
            }
            guard !host.isEmpty else { return .failure(.init(message: "missing host in \(argument.quotedForMessage)")) }
            let port: Int?
            if portText == "*" {
                port = nil
            } else if !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(portText),
                      (1...65535).contains(value) {
                port = value
            } else {
                return .failure(.init(message: "bad port in \(argument.quotedForMessage) (1-65535 or *)"))
            }
            list.append(Destination(host: host == "*" ? nil : String(host), port: port, written: argument))
        }
        return .success(.only(list))
    }
}

struct PermitRemoteOpenSyntaxError: Error {
    var message: String
}
