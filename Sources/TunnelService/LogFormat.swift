import Foundation
import Logging

/// Log lines a person can read: "web: connected to ...", with "warning:"/"error:" where it matters, the server
/// (and the client, when a line is about one forwarded connection) in parentheses, and every other metadata key at
/// debug level.
public struct TunnelLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let timestamps: Bool

    public init(label: String, level: Logger.Level, timestamps: Bool = false) {
        self.label = label
        self.logLevel = level
        self.timestamps = timestamps
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line = ""
        if timestamps { line += Self.timestamp() + " " }
        if let tunnel = merged["tunnel"] { line += "\(tunnel): " }
        // A line about a place in a config file starts with it, as compilers and `tunnel check` do.
        if let location = merged["location"] { line += "\(location): " }
        switch event.level {
        case .warning: line += "warning: "
        case .error, .critical: line += "error: "
        default: break
        }
        let message = "\(event.message)"
        line += message
        // Every line about a tunnel names the server it talks to, unless the message already does.
        var context: [String] = []
        if let peer = merged["peer"], !message.contains("\(peer)") { context.append("server \(peer)") }
        if let client = merged["client"] { context.append("client \(client)") }
        if !context.isEmpty { line += " (" + context.joined(separator: ", ") + ")" }
        if logLevel <= .debug {
            let rest = merged.filter { !["tunnel", "client", "peer", "location"].contains($0.key) }
            if !rest.isEmpty { line += " [" + rest.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "]" }
        }
        line += "\n"
        Self.writeToStandardError(line)
    }

    /// One write(2) per line: no Foundation objects, and lines from several event loops never interleave.
    static func writeToStandardError(_ line: String) {
        var bytes = line
        bytes.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
                offset += n
            }
        }
    }

    /// "2026-11-29T14:03:07Z", as ISO8601DateFormatter wrote it, from the C library (a formatter object per line
    /// was the most expensive part of logging, and log lines are written from event loops).
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
