// The entry point: a config file, read and checked once, from which any
// host's settings can be resolved.

import Foundation

public struct TunnelConfigFile: Sendable {
    /// The path (or name) the file was loaded from.
    public var path: String
    /// Lines that are fine for OpenSSH but that tunnel ignores (once per keyword).
    public var warnings: [ConfigError]
    /// Concrete Host names (no `*`, `?`, `!`) with at least one forward
    /// (Local, Remote or Dynamic): what `tunnel up FILE` brings up. File order, no duplicates.
    public var tunnelHostNames: [String]
    /// Every concrete name on a Host line, file order, no duplicates.
    public var concreteHostNames: [String]

    /// As parsed; `Resolver.walk` reads them (the reference way to resolve).
    let statements: [Statement]
    /// The same statements arranged for resolving many hosts quickly.
    let index: BlockIndex
    let context: ConfigContext
    let concreteLocations: [String: SourceLocation]

    /// Reads and checks a file; throws every problem found.
    public static func load(path: String, context: ConfigContext = .current) throws(ConfigErrors) -> TunnelConfigFile {
        switch ConfigFileReader.read(path: path) {
        case .failure(let problem):
            throw ConfigErrors([ConfigError(location: nil, message: problem.message)])
        case .success(let text):
            return try build(text: text, file: path, identity: ConfigFileReader.identity(of: path), context: context)
        }
    }

    /// Checks text as if read from `file` (used in messages and for relative Includes' cycle check).
    public static func parse(text: String, file: String, context: ConfigContext = .current) throws(ConfigErrors) -> TunnelConfigFile {
        if text.utf8.count > ConfigFileReader.maximumSize {
            throw ConfigErrors([ConfigError(location: nil, message: "\(file.quotedForMessage) is larger than 10 MB; not a config file")])
        }
        if text.utf8.contains(0) {
            throw ConfigErrors([ConfigError(location: nil, message: "\(file.quotedForMessage) is not a text file (contains NUL bytes)")])
        }
        return try build(text: text, file: file, identity: file, context: context)
    }

    private static func build(text: String, file: String, identity: String, context: ConfigContext) throws(ConfigErrors) -> TunnelConfigFile {
        var parser = Parser(context: context)
        let statements = parser.parse(text: text, file: file, identity: identity, depth: 0)
        if parser.diagnostics.hasErrors {
            throw ConfigErrors(parser.diagnostics.finalErrors)
        }
        var config = TunnelConfigFile(
            path: file,
            warnings: parser.diagnostics.warnings,
            tunnelHostNames: [],
            concreteHostNames: parser.concreteNames.map(\.name),
            statements: statements,
            index: BlockIndex(statements),
            context: context,
            concreteLocations: Dictionary(parser.concreteNames.map { ($0.name, $0.location) }, uniquingKeysWith: { a, _ in a })
        )
        // Whether a host has forwards does not depend on defaults or
        // expansions: the collected settings are enough.
        config.tunnelHostNames = config.concreteHostNames.filter { config.index.settings(for: $0).hasForwards }
        return config
    }

    /// The settings OpenSSH would use for `ssh -F path host`, defaults filled in.
    public func resolve(host: String) -> HostConfig {
        Resolver(host: host).resolve(index.settings(for: host), context: context, location: concreteLocations[host])
    }

    /// `resolve(host:)` the slow, obvious way (walking every statement), for
    /// tests to check `BlockIndex` against.
    func referenceResolve(host: String) -> HostConfig {
        let resolver = Resolver(host: host)
        return resolver.resolve(resolver.collect(statements), context: context, location: concreteLocations[host])
    }

    /// `resolve(host:)` for each of `tunnelHostNames`.
    public var tunnelHosts: [HostConfig] {
        tunnelHostNames.map(resolve(host:))
    }
}
