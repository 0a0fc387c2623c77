// Where a setting came from, and what went wrong with it.
//
// Every message a user sees names the file and line, like a compiler, so a
// mistake in a 300-line ~/.ssh/config can be found without guessing.

/// A line in a config file (or in a file it includes).
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int

    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }

    /// `file:line`, the form editors and terminals turn into links.
    public var description: String { "\(file):\(line)" }
}

/// One problem (or warning) found in a config file.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// `nil` when the problem is not about one line (e.g. the file cannot be read).
    public var location: SourceLocation?
    public var message: String

    public init(location: SourceLocation?, message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line: message`, or just `message` without a location.
    public var description: String {
        guard let location else { return message }
        return "\(location): \(message)"
    }
}

/// Every problem found in a file, not just the first: fixing a config one
/// error per run is tedious.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(_ errors: [ConfigError]) {
        self.errors = errors
    }

    /// One problem per line, in the order found.
    public var description: String {
        errors.map(\.description).joined(separator: "\n")
    }
}

/// Collects problems while parsing; stops recording after a limit so that a
/// binary file fed in by mistake cannot produce megabytes of messages.
struct DiagnosticSink {
    static let maximumErrors = 100

    private(set) var errors: [ConfigError] = []
    private(set) var warnings: [ConfigError] = []
    private var droppedErrors = 0
    private var warnedKeywords: Set<String> = []

    var hasErrors: Bool { !errors.isEmpty }

    mutating func error(_ message: String, at location: SourceLocation?) {
        if errors.count < Self.maximumErrors {
            errors.append(ConfigError(location: location, message: message))
        } else {
            droppedErrors += 1
        }
    }

    /// A warning is given once per key (e.g. once per ignored keyword), at the
    /// first place it appears: repeating it for every Host block is noise.
    mutating func warnOnce(key: String, _ message: String, at location: SourceLocation) {
        guard warnedKeywords.insert(key).inserted else { return }
        warnings.append(ConfigError(location: location, message: message))
    }

    /// The errors, with a final line saying how many were left out.
    var finalErrors: [ConfigError] {
        guard droppedErrors > 0 else { return errors }
        return errors + [ConfigError(location: nil, message: "\(droppedErrors) more problems not shown")]
    }
}

extension String {
    /// The string in double quotes with control characters made visible, so a
    /// message about garbage input stays on one readable line.
    var quotedForMessage: String {
        var out = "\""
        for scalar in unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar == "\u{FFFD}" {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
