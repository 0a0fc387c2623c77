import ArgumentParser
import Foundation
import TunnelConfig

extension Tunnel {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a config file without connecting.",
            discussion: """
                Exit 0 with a summary of each host that would come up and its forwards; exit 1 with one \
                FILE:LINE: message line per problem on stderr, for every problem found. Warnings (OpenSSH \
                keywords tunnel ignores) go to stderr as FILE:LINE: warning: text.

                With --resolve HOST, print HOST's resolved settings the way `ssh -F FILE -G HOST` does \
                (lower-case keyword, space, value), for the keywords tunnel acts on; compare the two to \
                see that tunnel and OpenSSH read the file the same way.
                """
        )

        @Argument(help: "Config file in ssh_config syntax.")
        var file: String

        @Option(name: .long, help: ArgumentHelp("Print the settings HOST resolves to, as `ssh -G` does.", valueName: "HOST"))
        var resolve: String?

        func run() throws {
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
                let problems = config.resolve(host: host).problems
                for problem in problems { printProblem(problem) }
                if !problems.isEmpty { throw ExitCode(1) }
                return
            }
            FileHandle.standardOutput.write(Data(CheckSummary.text(config, file: file).utf8))
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
            out += "\(host.name): \(host.user)@\(bracketed(host.hostName)):\(host.port)\n"
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
