import Foundation
import Logging

/// Log lines a person can read: "web: connected to ...", with "warning:"/"error:" where it matters, the client
/// address when a line is about one forwarded connection, and every other metadata key at debug level.
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
        if timestamps { line += ISO8601DateFormatter().string(from: Date()) + " " }
        if let tunnel = merged["tunnel"] { line += "\(tunnel): " }
        switch event.level {
        case .warning: line += "warning: "
        case .error, .critical: line += "error: "
        default: break
        }
        line += "\(event.message)"
        if let client = merged["client"] { line += " (client \(client))" }
        if logLevel <= .debug {
            let rest = merged.filter { $0.key != "tunnel" && $0.key != "client" }
            if !rest.isEmpty { line += " [" + rest.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "]" }
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
