import Foundation
import Logging

/// Log lines for machines (`--log-format json`): one JSON object per line on stderr,
/// `{"time":"2026-11-29T14:03:07.125Z","level":"notice","host":"web","peer":"10.0.0.5:22","message":"connected ..."}`,
/// with `client` (one forwarded connection's client) and `location` (a config FILE:LINE) when a line has them, and any
/// other metadata in a `metadata` object. Keys in this order, always; every level's metadata is kept (unlike the text
/// form, which shows it only at debug).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level

    public init(label: String, level: Logger.Level) {
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The keys lifted to the top level, under these names (the engine calls the host `tunnel`).
    private static let topLevel: [(key: String, name: String)] = [("tunnel", "host"), ("peer", "peer"),
                                                                   ("client", "client"), ("location", "location")]

    public func log(event: LogEvent) {
        Self.write(Self.line(level: event.level, message: "\(event.message)",
                             metadata: metadata.merging(event.metadata ?? [:]) { _, new in new }, time: Self.now()))
    }

    /// One line, newline included; pure, for tests.
    static func line(level: Logger.Level, message: String, metadata: Logger.Metadata, time: String) -> String {
        var out = "{\"time\":\(quoted(time)),\"level\":\(quoted(level.rawValue))"
        for (key, name) in topLevel {
            if let value = metadata[key] { out += ",\(quoted(name)):\(quoted("\(value)"))" }
        }
        out += ",\"message\":\(quoted(message))"
        let rest = metadata.filter { entry in !topLevel.contains { $0.key == entry.key } }
        if !rest.isEmpty {
            out += ",\"metadata\":{"
            out += rest.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(json($0.value))" }.joined(separator: ",")
            out += "}"
        }
        return out + "}\n"
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): return quoted(text)
        case .stringConvertible(let thing): return quoted(thing.description)
        case .array(let values): return "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let entries):
            return "{" + entries.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(json($0.value))" }.joined(separator: ",") + "}"
        }
    }

    /// A JSON string (RFC 8259 section 7). Written here rather than with JSONEncoder because a log line is built on
    /// an event loop for every event, and an encoder plus a dictionary per line cost more than the line is worth.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// "2026-11-29T14:03:07.125Z": UTC with milliseconds, from the C library (see TunnelLogHandler.timestamp).
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(parts.tm_year + 1900)-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2))."
            + "\(pad(Int(spec.tv_nsec) / 1_000_000, 3))Z"
    }

    private static func write(_ line: String) {
        TunnelLogHandler.writeToStandardError(line)
    }
}

/// How log lines look: for people (`text`, the default) or for log collectors (`json`).
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json

    /// A logger writing this format to stderr at `level`.
    public func makeLogger(level: Logger.Level, timestamps: Bool = false) -> Logger {
        switch self {
        case .text: return Logger(label: "tunnel") { label in TunnelLogHandler(label: label, level: level, timestamps: timestamps) }
        case .json: return Logger(label: "tunnel") { label in JSONLogHandler(label: label, level: level) }
        }
    }
}
