// `Ciphers`, `MACs`, `KexAlgorithms` and `HostKeyAlgorithms`: OpenSSH's algorithm lists (ssh_config(5)), and how
// one is laid over a default order and cut down to what the SSH library supports (OpenSSH's kex_assemble_names).
// Which names the library supports is the engine's business: here they are plain lists of names.

/// Which list a keyword sets.
public enum AlgorithmKind: String, Sendable, Hashable, CaseIterable {
    case keyExchange = "KexAlgorithms"
    case hostKey = "HostKeyAlgorithms"
    case cipher = "Ciphers"
    case mac = "MACs"

    /// The keyword, as ssh_config(5) spells it.
    public var keyword: String { rawValue }
}

/// One `Ciphers`/`MACs`/`KexAlgorithms`/`HostKeyAlgorithms` line as written: a comma-separated list of names or
/// patterns (`*`, `?`), which replaces the default list, or with a leading `+` is appended to it, with `-` is
/// removed from it, with `^` is put before it.
public struct AlgorithmList: Sendable, Hashable, CustomStringConvertible {
    public enum Operation: Sendable, Hashable {
        case replace, append, remove, putFirst
    }

    public var kind: AlgorithmKind
    public var operation: Operation
    public var patterns: [String]
    /// The line it was written on (for messages).
    public var location: SourceLocation?

    public init(kind: AlgorithmKind, operation: Operation, patterns: [String], location: SourceLocation? = nil) {
        self.kind = kind
        self.operation = operation
        self.patterns = patterns
        self.location = location
    }

    /// The list from its text (`+aes256-ctr,aes192-ctr`); nil when it is empty or has an empty name.
    public init?(kind: AlgorithmKind, text: String, location: SourceLocation? = nil) {
        var body = Substring(text)
        let operation: Operation
        switch body.first {
        case "+": operation = .append
        case "-": operation = .remove
        case "^": operation = .putFirst
        default: operation = .replace
        }
        if operation != .replace { body = body.dropFirst() }
        let names = body.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !names.isEmpty, !names.contains(where: \.isEmpty) else { return nil }
        self.init(kind: kind, operation: operation, patterns: names, location: location)
    }

    /// As written: `+aes256-ctr,aes192-ctr`.
    public var description: String {
        let prefix: String
        switch operation {
        case .replace: prefix = ""
        case .append: prefix = "+"
        case .remove: prefix = "-"
        case .putFirst: prefix = "^"
        }
        return prefix + patterns.joined(separator: ",")
    }

    /// What the list leaves to offer, most wanted first, given the default order and every name the library
    /// supports (OpenSSH's kex_assemble_names): the list is laid over `defaults`, each entry (a name or pattern)
    /// then stands for the supported names it matches, and repeats go. `unsupported`: entries that match no
    /// supported name (dropped; worth a warning). Removing never warns: taking away what is not there is harmless.
    public func applied(defaults: [String], supported: [String]) -> (names: [String], unsupported: [String]) {
        let wanted: [String]
        switch operation {
        case .remove:
            let kept = defaults.filter { name in !patterns.contains { Self.matches(name, $0) } }
            return (kept.filter(supported.contains), [])
        case .replace: wanted = patterns
        case .append: wanted = defaults + patterns
        case .putFirst: wanted = patterns + defaults
        }
        var names: [String] = []
        var unsupported: [String] = []
        for entry in wanted {
            let matching = supported.filter { Self.matches($0, entry) }
            if matching.isEmpty && patterns.contains(entry) && !unsupported.contains(entry) { unsupported.append(entry) }
            for name in matching where !names.contains(name) { names.append(name) }
        }
        return (names, unsupported)
    }

    /// Whether `name` matches one entry of a list (OpenSSH's `*` and `?`; a negated entry matches nothing alone).
    static func matches(_ name: String, _ entry: String) -> Bool {
        !entry.hasPrefix("!") && Wildcard.matches(name, pattern: entry)
    }
}
