import Foundation
import TunnelEngine

/// The control socket's protocol: one JSON object per line each way, one reply per request (README "Control
/// socket"). Versioned by `v`: a server answers a version it does not speak with an error naming the one it does.
/// Pure: decoding and encoding only, so it is tested without a socket.
public enum ControlProtocol {
    public static let version = 1
    /// A request line longer than this is refused (the longest real one names a few hosts).
    public static let maximumRequestBytes = 64 * 1024
}

/// What a client asks.
public enum ControlCommand: Sendable, Equatable {
    case status
    /// Stop the named hosts; all of them (and the process) when `hosts` is empty.
    case down(hosts: [String])
    case reload
}

/// A request line as it travels: `{"v":1,"cmd":"status"}`, `{"v":1,"cmd":"down","hosts":["web"]}`.
public struct ControlRequest: Codable, Sendable, Equatable {
    public var v: Int
    public var cmd: String
    public var hosts: [String]?

    public init(_ command: ControlCommand) {
        v = ControlProtocol.version
        switch command {
        case .status: cmd = "status"
        case .down(let names): cmd = "down"; hosts = names
        case .reload: cmd = "reload"
        }
    }

    /// The request a line carries, or why it is not one (the reply's `error`).
    public static func decode(_ line: some Collection<UInt8>) -> Result<ControlCommand, ControlRequestError> {
        guard line.count <= ControlProtocol.maximumRequestBytes else { return .failure(.tooLong) }
        let request: ControlRequest
        do {
            request = try JSONDecoder().decode(ControlRequest.self, from: Data(line))
        } catch {
            return .failure(.notJSON)
        }
        guard request.v == ControlProtocol.version else { return .failure(.unsupportedVersion(request.v)) }
        switch request.cmd {
        case "status": return .success(.status)
        case "down": return .success(.down(hosts: request.hosts ?? []))
        case "reload": return .success(.reload)
        default: return .failure(.unknownCommand(request.cmd))
        }
    }

    public func encodedLine() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return ((try? encoder.encode(self)) ?? Data()) + Data("\n".utf8)
    }
}

/// Why a request line was refused.
public enum ControlRequestError: Error, Equatable, CustomStringConvertible {
    case notJSON
    case tooLong
    case unsupportedVersion(Int)
    case unknownCommand(String)

    public var description: String {
        switch self {
        case .notJSON: return "not a JSON request object: expected {\"v\":1,\"cmd\":\"status\"}"
        case .tooLong: return "request longer than \(ControlProtocol.maximumRequestBytes) bytes"
        case .unsupportedVersion(let v): return "protocol version \(v) not supported (this server speaks v\(ControlProtocol.version))"
        case .unknownCommand(let cmd): return "unknown command \"\(cmd)\" (known: status, down, reload)"
        }
    }
}

/// A reply line: `{"v":1,"ok":true,...}` or `{"v":1,"ok":false,"error":"...","errors":["FILE:LINE: ..."]}`.
public struct ControlReply: Codable, Sendable, Equatable {
    public var v = ControlProtocol.version
    public var ok: Bool
    /// One line saying what went wrong (ok false).
    public var error: String?
    /// A rejected reload's config problems, one `FILE:LINE: message` each.
    public var errors: [String]?
    /// `status`: every host.
    public var status: StatusReport?
    /// `down`, `reload`: what changed, one line each ("web: stopped", "db: added").
    public var changes: [String]?

    public init(ok: Bool, error: String? = nil, errors: [String]? = nil, status: StatusReport? = nil, changes: [String]? = nil) {
        self.ok = ok
        self.error = error
        self.errors = errors
        self.status = status
        self.changes = changes
    }

    public static func failure(_ message: String, errors: [String]? = nil) -> ControlReply {
        ControlReply(ok: false, error: message, errors: errors)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    public func encodedLine() -> Data {
        let body = (try? Self.encoder.encode(self)) ?? Data(#"{"ok":false,"error":"reply could not be encoded","v":1}"#.utf8)
        return body + Data("\n".utf8)
    }

    public static func decode(_ line: Data) throws -> ControlReply {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(ControlReply.self, from: line)
    }
}

/// `status`'s answer, the stable JSON documented in the README ("JSON schema").
public struct StatusReport: Codable, Sendable, Equatable {
    public var pid: Int32
    /// The config file the running process read last.
    public var config: String
    public var startedAt: Date
    public var hosts: [HostStatus]

    public init(pid: Int32, config: String, startedAt: Date, hosts: [HostStatus]) {
        self.pid = pid
        self.config = config
        self.startedAt = startedAt
        self.hosts = hosts
    }
}

/// One host in `status`. Fields that belong to one state are present only in it.
public struct HostStatus: Codable, Sendable, Equatable {
    /// "connecting", "up", "reconnecting", "failed", "needs-authentication", "stopped".
    public var name: String
    public var state: String
    /// up: when the session came up.
    public var since: Date?
    /// "host:port" as configured.
    public var server: String
    /// up: the server's host key and the negotiated algorithms.
    public var hostKeyType: String?
    public var hostKeyFingerprint: String?
    public var cipherOut: String?
    public var cipherIn: String?
    public var macOut: String?
    public var macIn: String?
    /// reconnecting, failed: why.
    public var reason: String?
    /// reconnecting (and failed, while retried): when the next attempt starts.
    public var nextRetry: Date?
    public var reconnects: Int
    public var lastError: String?
    /// up: seconds since `since`, as of the reply (so a client needs no clock of its own).
    public var uptimeSeconds: Int?
    /// Totals over the host's forwards (and over forwards a reload removed): connections open now and accepted
    /// since start, bytes in (from the far end) and out (from the connecting clients), refused channel opens.
    public var activeConnections = 0
    public var totalConnections = 0
    public var bytesIn = 0
    public var bytesOut = 0
    public var openFailures = 0
    public var forwards: [ForwardStatus]
    /// With `TunnelSessions` > 1 only: SSH sessions up and kept up, and the forwarded connections each carries.
    public var sessionsUp: Int?
    public var sessionsWanted: Int?
    public var sessionConnections: [Int]?

    public init(name: String, state: String, server: String, reconnects: Int = 0, forwards: [ForwardStatus] = []) {
        self.name = name
        self.state = state
        self.server = server
        self.reconnects = reconnects
        self.forwards = forwards
    }
}

/// One forward in `status`. Bytes "out" went from the connecting client to the far end, "in" came back.
public struct ForwardStatus: Codable, Sendable, Equatable {
    /// "local", "dynamic", "remote".
    public var kind: String
    /// Stable for the forward's life: "L127.0.0.1:5432", "D127.0.0.1:1080", "Rlocalhost:9000" (the metrics'
    /// `forward` label).
    public var id: String
    public var listen: String
    public var target: String
    public var activeConnections: Int
    public var totalConnections: Int
    public var bytesIn: Int
    public var bytesOut: Int
    public var openFailures: Int

    public init(kind: String, id: String = "", listen: String, target: String, activeConnections: Int = 0, totalConnections: Int = 0,
                bytesIn: Int = 0, bytesOut: Int = 0, openFailures: Int = 0) {
        self.kind = kind
        self.id = id
        self.listen = listen
        self.target = target
        self.activeConnections = activeConnections
        self.totalConnections = totalConnections
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.openFailures = openFailures
    }
}

extension HostStatus {
    /// The engine's snapshot in the protocol's words.
    init(_ status: TunnelStatus, server: String, now: Date = Date()) {
        self.init(name: status.name, state: "connecting", server: server, reconnects: status.reconnects)
        lastError = status.lastError
        activeConnections = status.totals.connectionsActive
        totalConnections = status.totals.connectionsAccepted
        bytesIn = status.totals.bytesReceived
        bytesOut = status.totals.bytesSent
        openFailures = status.totals.channelOpenFailures
        switch status.state {
        case .connecting:
            state = "connecting"
        case .up(let session):
            state = "up"
            since = session.since
            uptimeSeconds = max(0, Int(now.timeIntervalSince(session.since)))
            self.server = session.server
            hostKeyType = session.hostKeyType
            hostKeyFingerprint = session.hostKeyFingerprint
            cipherOut = session.algorithms.cipherClientToServer
            cipherIn = session.algorithms.cipherServerToClient
            macOut = session.algorithms.macClientToServer
            macIn = session.algorithms.macServerToClient
        case .reconnecting(let why, let next):
            state = "reconnecting"
            reason = why
            nextRetry = next
        case .failed(let why, let next):
            state = "failed"
            reason = why
            nextRetry = next
        case .needsAuthentication(let why):
            state = "needs-authentication"
            reason = why
        case .stopped:
            state = "stopped"
        }
        if status.sessionsWanted > 1 {
            sessionsUp = status.sessionsUp
            sessionsWanted = status.sessionsWanted
            sessionConnections = status.sessionConnections
        }
        forwards = status.forwards.map { forward in
            ForwardStatus(kind: forward.kind.rawValue, id: forward.id, listen: forward.listen, target: forward.target,
                          activeConnections: forward.counts.connectionsActive, totalConnections: forward.counts.connectionsAccepted,
                          bytesIn: forward.counts.bytesReceived, bytesOut: forward.counts.bytesSent,
                          openFailures: forward.counts.channelOpenFailures)
        }
    }
}
