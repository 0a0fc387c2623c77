import ArgumentParser
import Foundation
import TunnelService

extension Tunnel {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Bring up the tunnels of a config file and keep them up until SIGINT/SIGTERM.",
            discussion: """
                Every Host with a concrete name and at least one forward comes up, or only the HOSTs named. \
                A lost session is replaced (keepalives find dead links; reconnect backs off up to \
                TunnelReconnectMaxDelay) while the local ports stay bound. Exit 0 on SIGINT/SIGTERM; \
                exit 1 only when no host could be brought up at all.
                """
        )

        @Argument(help: "Config file in ssh_config syntax.")
        var file: String

        @Argument(help: "Hosts to bring up (default: every Host with a forward).")
        var hosts: [String] = []

        @OptionGroup var logging: LoggingOptions

        @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://ADDRESS:PORT/metrics (loopback only).",
                                                valueName: "ADDRESS:PORT"),
                transform: parseMetricsAddress)
        var metrics: MetricsAddress?

        func run() async throws {
            let logger = logging.makeLogger()
            let service = TunnelService(configPath: file, hostNames: hosts, logger: logger,
                                        passphrasePrompt: PassphrasePrompt.standard(), metricsAddress: metrics)
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

/// `--metrics ADDRESS:PORT`, refused with the reason when it is not a numeric loopback address.
func parseMetricsAddress(_ text: String) throws -> MetricsAddress {
    do throws(MetricsAddress.Problem) {
        return try MetricsAddress(parsing: text)
    } catch {
        throw ValidationError(error.description)
    }
}
