import ArgumentParser
import Foundation
import TunnelService

extension Tunnel {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring up the tunnels of a config file and keep them up until SIGINT/SIGTERM or `tunnel down`.",
            discussion: """
                Every Host with a concrete name and at least one forward comes up, or only the HOSTs named. \
                A lost session is replaced (keepalives find dead links; reconnect backs off up to \
                TunnelReconnectMaxDelay) while the local ports stay bound. `tunnel status`, `tunnel down` and \
                `tunnel reload` (or SIGHUP) talk to it over its control socket. On SIGINT/SIGTERM the listeners \
                close, open connections get --drain-time seconds to finish (a second signal cuts that short), \
                and the exit status is 0; exit 1 when another instance runs on the same control socket, or no \
                host could be brought up at all. Under systemd (Type=notify) it reports readiness itself.
                """
        )

        @Argument(help: ArgumentHelp(
            "Config file in ssh_config syntax (default: $XDG_CONFIG_HOME/tunnel/tunnels.conf, else ~/.config/tunnel/tunnels.conf), then the hosts to bring up (default: every Host with a forward).",
            valueName: "file-or-host"))
        var arguments: [String] = []

        @Option(name: .long, help: ArgumentHelp("Seconds open connections get to finish after SIGTERM/SIGINT.", valueName: "SECONDS"))
        var drainTime: Double = 5

        @OptionGroup var logging: LoggingOptions
        @OptionGroup var control: ControlOptions

        @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDRESS:PORT/metrics (loopback only).",
                                                valueName: "ADDRESS:PORT"),
                transform: parseMetricsAddress)
        var metrics: MetricsAddress?

        func run() async throws {
            let logger = logging.makeLogger()
            let (file, hosts) = DefaultConfig.split(arguments)
            logger.notice("reading \(file)")
            let service = TunnelService(configPath: file, hostNames: hosts, controlPath: control.path, drainTime: drainTime,
                                        logger: logger, passphrasePrompt: PassphrasePrompt.standard(), metricsAddress: metrics)
            do {
                let code = try await service.run()
                if code != 0 { throw ExitCode(code) }
            } catch let error as TunnelService.StartupError {
                printError(error.description)
                throw ExitCode(1)
            }
        }
    }
}

/// One line per problem on stderr, prefixed so scripts and people can tell it from data.
func printError(_ text: String) {
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
        FileHandle.standardError.write(Data("tunnel: \(line)\n".utf8))
    }
}

/// `tunnel up [FILE] [HOST...]`: the first argument is the file when it names one that exists or looks like a path
/// (has a "/" or ends in ".conf"); otherwise every argument is a host and the default file is read.
enum DefaultConfig {
    static func path(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let config = environment["XDG_CONFIG_HOME"], !config.isEmpty { return config + "/tunnel/tunnels.conf" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.config/tunnel/tunnels.conf"
    }

    static func split(_ arguments: [String]) -> (file: String, hosts: [String]) {
        guard let first = arguments.first else { return (path(), []) }
        if first.contains("/") || first.hasSuffix(".conf") || FileManager.default.fileExists(atPath: first) {
            return (first, Array(arguments.dropFirst()))
        }
        return (path(), arguments)
    }
}

/// `--metrics ADDRESS:PORT`, refused with the reason when it is not a numeric loopback address.
func parseMetricsAddress(_ text: String) throws -> MetricsAddress {
    do throws(MetricsAddress.Problem) {
        return try MetricsAddress(parsing: text)
    } catch {
        throw ValidationError(error.description)
    }
}
