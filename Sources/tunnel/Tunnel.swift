import ArgumentParser
import Foundation
import Logging
import TunnelConfig
import TunnelService

@main
struct Tunnel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tunnel",
        abstract: "Keep SSH tunnels up, configured in OpenSSH ssh_config syntax.",
        version: VersionInfo.text,
        subcommands: [Up.self, Status.self, Down.self, Reload.self, Check.self, Service.self]
    )
}

/// Options every subcommand that logs shares.
struct LoggingOptions: ParsableArguments {
    @Flag(name: .short, help: "More detail: -v logs at debug level, -vv at trace.")
    var verbose: Int

    @Flag(name: .short, help: "Only warnings and errors.")
    var quiet = false

    @Option(name: .long, help: "Log level, overriding -v/-q.")
    var logLevel: Logger.Level?

    @Option(name: .long, help: "Log lines as text (for people) or json (one object per line, for log collectors).")
    var logFormat: LogFormat = .text

    @Flag(name: .long, help: "Prefix text log lines with the time (useful when not under journald).")
    var timestamps = false

    func validate() throws {
        if quiet && verbose > 0 { throw ValidationError("-q and -v cannot be used together") }
    }

    var level: Logger.Level {
        if let logLevel { return logLevel }
        if quiet { return .warning }
        switch verbose {
        case 0: return .info
        case 1: return .debug
        default: return .trace
        }
    }

    func makeLogger() -> Logger {
        logFormat.makeLogger(level: level, timestamps: timestamps)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension LogFormat: ExpressibleByArgument {}
