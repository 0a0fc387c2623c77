// The entry point: a config file, read and checked once, from which any
// host's settings can be resolved.

import Foundation

public struct TunnelConfigFile: Sendable {
    /// The path (or name) the file was loaded from.
    public var path: String
    /// Lines that are fine for OpenSSH but that tunnel ignores (once per
    /// keyword); lines that make some named hosts unusable (naming them);
    /// `Match exec` lines not run under `MatchExecPolicy.skip`.
    public var warnings: [ConfigError]
    /// Concrete Host names (no `*`, `?`, `!`) with at least one forward
    /// (Local, Remote or Dynamic, including ones a Match block adds) and no
    /// `HostConfig.problems`: what `tunnel up FILE` brings up. File order, no duplicates.
    public var tunnelHostNames: [String]
    /// Every concrete name on a Host line, file order, no duplicates.
    public var concreteHostNames: [String]

    /// As parsed; `Resolver.walk` reads them (the reference way to resolve).
    let statements: [Statement]
    /// The same statements arranged for resolving many hosts quickly.
    let index: BlockIndex
    let context: ConfigContext
    let concreteLocations: [String: SourceLocation]
    /// Some file has a Match line: settings depend on more than the name.
    let hasMatch: Bool
    /// Some Match line says `final`: resolve in two passes, as OpenSSH does.
    let wantsFinalPass: Bool
    /// `Match exec` results of this load (see `ExecResults`).
    let execResults = ExecResults()
    /// Whether resolving runs `Match exec` commands.
    public let matchExec: MatchExecPolicy

    /// Reads and checks a file; throws every problem found. `matchExec`:
    /// `.skip` for a check that must not run commands from the file.
    public static func load(path: String, context: ConfigContext = .current,
                            matchExec: MatchExecPolicy = .standard) throws(ConfigErrors) -> TunnelConfigFile {
        switch ConfigFileReader.read(path: path) {
        case .failure(let problem):
            throw ConfigErrors([ConfigError(location: nil, message: problem.message)])
        case .success(let text):
            return try build(text: text, file: path, identity: ConfigFileReader.identity(of: path), context: context,
                             matchExec: matchExec)
        }
    }

    /// Checks text as if read from `file` (used in messages and for relative Includes' cycle check).
    public static func parse(text: String, file: String, context: ConfigContext = .current,
                             matchExec: MatchExecPolicy = .standard) throws(ConfigErrors) -> TunnelConfigFile {
        if text.utf8.count > ConfigFileReader.maximumSize {
            throw ConfigErrors([ConfigError(location: nil, message: "\(file.quotedForMessage) is larger than 10 MB; not a config file")])
        }
        if text.utf8.contains(0) {
            throw ConfigErrors([ConfigError(location: nil, message: "\(file.quotedForMessage) is not a text file (contains NUL bytes)")])
        }
        return try build(text: text, file: file, identity: file, context: context, matchExec: matchExec)
    }

    private static func build(text: String, file: String, identity: String, context: ConfigContext,
                              matchExec: MatchExecPolicy) throws(ConfigErrors) -> TunnelConfigFile {
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
            concreteLocations: Dictionary(parser.concreteNames.map { ($0.name, $0.location) }, uniquingKeysWith: { a, _ in a }),
            hasMatch: parser.hasMatch,
            wantsFinalPass: parser.wantsFinalPass,
            matchExec: matchExec
        )
        if matchExec == .skip {
            for location in parser.execLocations {
                config.warnings.append(ConfigError(location: location, message:
                    "Match exec: not run by a plain check; its block counts as not matching here (--resolve HOST runs it)"))
            }
        }
        // Whether a host has forwards does not depend on defaults or
        // expansions: the collected settings are enough.
        var problemHosts: [ConfigError: [String]] = [:]
        var problemOrder: [ConfigError] = []
        config.tunnelHostNames = config.concreteHostNames.filter { name in
            let settings = config.collectSettings(host: name)
            for problem in settings.problems {
                if problemHosts[problem] == nil { problemOrder.append(problem) }
                problemHosts[problem, default: []].append(name)
            }
            return settings.hasForwards && settings.problems.isEmpty
        }
        // Errors stay with the hosts they concern: the file stays usable.
        for problem in problemOrder {
            let names = problemHosts[problem] ?? []
            // A line under `Host *` can concern every host: name a few.
            let shown = names.count > 5 ? names.prefix(4).joined(separator: ", ") + " and \(names.count - 4) more"
                                        : names.joined(separator: ", ")
            let which = names.count == 1 ? "host \(shown) uses it and" : "hosts \(shown) use it and"
            config.warnings.append(ConfigError(location: problem.location,
                                               message: "\(problem.message) (\(which) cannot be brought up)"))
        }
        return config
    }

    /// The settings that apply to `host`, before defaults, from the index
    /// (in two passes when the file asks for OpenSSH's final pass).
    func collectSettings(host: String) -> CollectedSettings {
        resolver(host).collect(finalPass: wantsFinalPass) { resolver, settings in
            index.collect(resolver, into: &settings)
        }
    }

    func resolver(_ host: String) -> Resolver {
        Resolver(host: host, context: context, matchExec: matchExec, execResults: execResults)
    }

    /// The settings OpenSSH would use for `ssh -F path host`, defaults filled in, with the `ProxyJump` chain
    /// resolved into `jumpChain` (see `resolveJumps`). With `Match exec` lines and `MatchExecPolicy.run`, this runs
    /// commands.
    public func resolve(host: String) -> HostConfig {
        resolveJumps(resolveOwnSettings(host: host))
    }

    /// `resolve(host:)` without the jump chain: what each hop of a chain is resolved with.
    func resolveOwnSettings(host: String) -> HostConfig {
        resolver(host).resolve(collectSettings(host: host), context: context, location: concreteLocations[host])
    }

    /// `resolve(host:)` the slow, obvious way (walking every statement), for
    /// tests to check `BlockIndex` against.
    func referenceResolve(host: String) -> HostConfig {
        let resolver = resolver(host)
        return resolveJumps(resolver.resolve(resolver.collect(statements, finalPass: wantsFinalPass), context: context,
                                             location: concreteLocations[host]))
    }

    /// `resolve(host:)` for each of `tunnelHostNames`.
    public var tunnelHosts: [HostConfig] {
        tunnelHostNames.map(resolve(host:))
    }
}
