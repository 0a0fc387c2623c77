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
        version: "0.1.0",
        subcommands: [Up.self, Status.self, Down.self, Reload.self, Check.self]
    )
}

/// Options every subcommand that logs shares.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Flag(name: .long, help: "Prefix log lines with the time (useful when not under journald).")
    var timestamps = false

    func makeLogger() -> Logger {
        let level = logLevel
        let timestamps = self.timestamps
        return Logger(label: "tunnel") { label in TunnelLogHandler(label: label, level: level, timestamps: timestamps) }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
