import ArgumentParser
import Foundation
import Logging
import TunnelConfig
import TunnelService

extension Tunnel {
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a config file without connecting.",
            discussion: """
                Exit 0 with a summary of each host that would come up and its forwards; exit 1 with one \
                FILE:LINE: message line per problem on stderr, for every problem found. Warnings (OpenSSH \
                keywords tunnel ignores) go to stderr as FILE:LINE: warning: text.

                With --resolve HOST, print HOST's resolved settings the way `ssh -F FILE -G HOST` does \
                (lower-case keyword, space, value), for the keywords tunnel acts on; compare the two to \
                see that tunnel and OpenSSH read the file the same way.

                With --connect, set up an SSH session to each HOST (default: every host `tunnel up` would \
                bring up) as `tunnel up` does (same host-key policy, same keys), open no forwards, disconnect, \
                and explain the handshake: key exchange, the server's host key and where known_hosts has it, \
                cipher and MAC each way, compression, and the authentication that worked (or why each failed). \
                Exit 0 only when every host passed. With --json, print a JSON array, one object per host.
                """
        )

        @Argument(help: "Config file in ssh_config syntax.")
        var file: String

        @Option(name: .long, help: ArgumentHelp("Print the settings HOST resolves to, as `ssh -G` does.", valueName: "HOST"))
        var resolve: String?

        @Flag(name: .long, help: "Connect to each host, authenticate, open no forwards, and explain the handshake.")
        var connect = false

        @Flag(name: .long, help: "With --connect: print the results as JSON (an array, one object per host).")
        var json = false

        @Argument(help: "With --connect: the hosts to check (default: every Host with a forward).")
        var hosts: [String] = []

        func validate() throws {
            if !connect && !hosts.isEmpty { throw ValidationError("HOST arguments need --connect") }
            if !connect && json { throw ValidationError("--json needs --connect") }
            if connect && resolve != nil { throw ValidationError("--resolve and --connect cannot be used together") }
        }

        func run() async throws {
            if connect { return try await runConnect() }
            let config: TunnelConfigFile
            do {
                // A plain check has no side effects: `Match exec` commands run only with --resolve.
                config = try TunnelConfigFile.load(path: file, matchExec: resolve == nil ? .skip : .standard)
            } catch {
                for problem in error.errors { printProblem(problem) }
                throw ExitCode(1)
            }
            for warning in config.warnings { printProblem(warning, prefix: "warning: ") }

            if let host = resolve {
                let text = config.resolvedSettings(host: host).map { "\($0)\n" }.joined()
                FileHandle.standardOutput.write(Data(text.utf8))
                // Lines this host uses that tunnel cannot act on, failed `Match exec` commands.
                let resolved = config.resolve(host: host)
                let algorithms = AlgorithmCheck.problems([resolved])
                for warning in algorithms.warnings { printProblem(warning, prefix: "warning: ") }
                let problems = resolved.problems + algorithms.errors
                for problem in problems { printProblem(problem) }
                if !problems.isEmpty { throw ExitCode(1) }
                return
            }
            // Ciphers/MACs/KexAlgorithms/HostKeyAlgorithms against what the linked libssh2 supports, once per line.
            let (errors, warnings) = AlgorithmCheck.problems(config.tunnelHosts)
            for warning in warnings { printProblem(warning, prefix: "warning: ") }
            for error in errors { printProblem(error) }
            if !errors.isEmpty { throw ExitCode(1) }
            FileHandle.standardOutput.write(Data(CheckSummary.text(config, file: file).utf8))
        }

        private func runConnect() async throws {
            // Warnings from the sessions (e.g. StrictHostKeyChecking no) go to stderr; the report to stdout.
            let logger = Logger(label: "tunnel") { label in TunnelLogHandler(label: label, level: .warning) }
            let check = ConnectionCheck(configPath: file, hostNames: hosts, logger: logger,
                                        passphrasePrompt: PassphrasePrompt.standard())
            let results: [HostCheckResult]
            do {
                results = try await check.run()
            } catch {
                printError(error.description)
                throw ExitCode(1)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                FileHandle.standardOutput.write(try encoder.encode(results) + Data("\n".utf8))
            } else {
                let text = results.map(HandshakeExplanation.text).joined() + HandshakeExplanation.summary(results)
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            if !results.allSatisfy(\.passed) { throw ExitCode(1) }
        }

        /// `FILE:LINE: message`; a problem with no line (unreadable file) as `tunnel: message`.
        private func printProblem(_ problem: ConfigError, prefix: String = "") {
            let line = problem.location.map { "\($0): \(prefix)\(problem.message)" } ?? "tunnel: \(prefix)\(problem.message)"
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }
}

/// The human summary `tunnel check FILE` prints: one line per host that `tunnel up FILE` would bring
/// up, its forwards indented under it, then one line with the totals.
enum CheckSummary {
    static func text(_ config: TunnelConfigFile, file: String) -> String {
        let hosts = config.tunnelHosts
        var out = ""
        var forwards = 0
        for host in hosts {
            // [ProxyJump] "db: deploy@db.internal:22 via gateway": the hops as they resolve.
            let hops = host.jumpChain
            let via = hops.isEmpty ? "" : " via " + hops.map { "\($0.user)@\(bracketed($0.hostName)):\($0.port)" }.joined(separator: ", ")
            let sessions = host.sessions > 1 ? " (\(host.sessions) SSH sessions)" : ""
            out += "\(host.name): \(host.user)@\(bracketed(host.hostName)):\(host.port)\(via)\(sessions)\n"
            if let problem = host.jumpChainProblem {
                // `tunnel up` refuses it (never connects directly instead); say so here, before anyone runs it.
                out += "  not brought up: \(problem.message)\n"
            }
            if let problem = host.proxyCommandProblem {
                out += "  not brought up: \(problem.message)\n"
            }
            for forward in host.localForwards {
                if forward.isUnixSocket {
                    out += "  LocalForward \(forward.listener) -> \(forward.target) (Unix socket: parsed, not active yet)\n"
                    continue
                }
                out += "  LocalForward \(forward.bind):\(forward.listenPort) -> \(bracketed(forward.targetHost)):\(forward.targetPort)\n"
            }
            for forward in host.remoteForwards {
                let target: String
                switch forward.target {
                case .host(let name, let port): target = "\(bracketed(name)):\(port)"
                case .socks:
                    let permit = host.permitRemoteOpen == .any ? "" : " (PermitRemoteOpen \(host.permitRemoteOpen))"
                    target = "SOCKS proxy here\(permit)"
                case .unixSocket(let path): target = path
                }
                let chosen = forward.listenPort == 0 && forward.listenSocketPath == nil ? " (port chosen by the server)" : ""
                let listener = forward.listenSocketPath ?? "\(forward.bind):\(forward.listenPort)"
                // Served: the server listens on a TCP port, and connections go to a TCP target (or SOCKS) here.
                var served = forward.listenSocketPath == nil
                if case .unixSocket = forward.target { served = false }
                out += "  RemoteForward \(listener) on the server\(chosen) -> \(target)\(served ? "" : " (parsed, not active yet)")\n"
            }
            for forward in host.dynamicForwards {
                let listener = forward.listenSocketPath ?? "\(forward.bind):\(forward.listenPort)"
                let auth = host.proxyAuth.map { " (user \($0.user) and password required)" } ?? ""
                out += "  DynamicForward \(listener) SOCKS 4/5 and HTTP proxy\(auth)\n"
            }
            forwards += host.localForwards.count + host.remoteForwards.count + host.dynamicForwards.count
        }
        if hosts.isEmpty {
            out += "\(file): OK, but no Host has a forward: `tunnel up` would have nothing to do\n"
        } else {
            out += "\(file): OK, \(count(hosts.count, "host")), \(count(forwards, "forward"))\n"
        }
        return out
    }

    private static func bracketed(_ host: String) -> String {
        host.contains(":") ? "[\(host)]" : host
    }

    private static func count(_ n: Int, _ noun: String) -> String {
        "\(n) \(noun)\(n == 1 ? "" : "s")"
    }
}
