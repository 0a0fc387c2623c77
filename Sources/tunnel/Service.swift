import ArgumentParser
import Foundation
import TunnelConfig
import TunnelService

extension Tunnel {
    struct Service: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install or remove tunnel as a background service (systemd on Linux, launchd on macOS).",
            subcommands: [Install.self, Uninstall.self]
        )
    }
}

/// `--user` / `--system` and `--name`, shared by install and uninstall.
struct ServiceOptions: ParsableArguments {
    @Flag(help: "A service of the current user (default), or of the whole machine (needs root).")
    var scope: ServiceScope = .user

    @Option(help: "Service name, to run several configs as separate services.")
    var name = "tunnel"

    @Flag(help: "Print what would be written or run instead of doing it.")
    var dryRun = false

    func definition(executable: String, configPath: String, upOptions: [String] = []) throws -> ServiceDefinition {
        let environment = ProcessInfo.processInfo.environment
        // A system service runs as the person installing it (through sudo: the one who ran sudo), whose keys
        // and known_hosts the config names.
        // $HOME first, as shells do (Foundation's home directory comes from the password database).
        let home = environment["HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil } ?? NSHomeDirectory()
        let user = environment["SUDO_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? NSUserName()
        do {
            return try ServiceDefinition(manager: .native, scope: scope, executable: executable, configPath: configPath,
                                         upOptions: upOptions, name: name, systemUser: user, home: home)
        } catch {
            throw ValidationError(error.description)
        }
    }
}

extension ServiceScope: EnumerableFlag {}

extension Tunnel.Service {
    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a service that runs `tunnel up FILE` and restarts it when it fails.",
            discussion: """
                Writes a systemd unit (Type=notify, Restart=on-failure, reload with SIGHUP) or a launchd \
                property list, prints where, and the one command that starts it now and at every boot or login. \
                FILE must pass `tunnel check`. With --dry-run, prints the file instead.
                """
        )

        @Argument(help: "Config file in ssh_config syntax (default: $XDG_CONFIG_HOME/tunnel/tunnels.conf, else ~/.config/tunnel/tunnels.conf).")
        var file: String?

        @OptionGroup var options: ServiceOptions

        @Option(name: .long, help: ArgumentHelp("Have the service serve Prometheus metrics (`tunnel up --metrics`).",
                                                valueName: "ADDRESS:PORT"),
                transform: parseMetricsAddress)
        var metrics: MetricsAddress?

        func run() throws {
            let config = absolutePath(file ?? ServiceDefinition.defaultConfigPath(home: ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()))
            // A service that cannot start would restart forever: refuse a config with errors now.
            do {
                _ = try TunnelConfigFile.load(path: config, matchExec: .skip)
            } catch {
                for problem in error.errors {
                    printError(problem.location.map { "\($0): \(problem.message)" } ?? problem.message)
                }
                throw ExitCode(1)
            }
            guard let executable = Bundle.main.executableURL?.resolvingSymlinksInPath().path else {
                printError("cannot tell where this tunnel binary is")
                throw ExitCode(1)
            }
            let service = try options.definition(executable: executable, configPath: config,
                                                 upOptions: metrics.map { ["--metrics", $0.description] } ?? [])
            if options.dryRun {
                print("# \(service.path)")
                print(service.contents, terminator: "")
                return
            }
            do {
                let directory = (service.path as NSString).deletingLastPathComponent
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try Data(service.contents.utf8).write(to: URL(fileURLWithPath: service.path))
            } catch {
                printError("cannot write \(service.path): \(Self.reason(error))\(options.scope == .system ? " (a system service needs root: try sudo)" : "")")
                throw ExitCode(1)
            }
            print("wrote \(service.path)")
            print("start it now and at every \(options.scope == .user ? "login" : "boot"): \(service.enableCommand)")
            print("follow its log: \(service.logsCommand)")
        }

        private static func reason(_ error: Error) -> String {
            let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
            if let code = underlying?.code, underlying?.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(code))) }
            return error.localizedDescription
        }
    }

    struct Uninstall: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the service, keep it from starting again, and remove its file.",
            discussion: "Runs `systemctl disable --now` (or `launchctl bootout`), then removes what install wrote."
        )

        @OptionGroup var options: ServiceOptions

        func run() throws {
            // The paths in the definition do not matter for finding and removing it.
            let service = try options.definition(executable: "/", configPath: "/")
            guard FileManager.default.fileExists(atPath: service.path) else {
                printError("\(service.path): no such file; nothing to uninstall")
                throw ExitCode(1)
            }
            let disable = service.disableArguments
            if options.dryRun {
                print(disable.joined(separator: " "))
                print("rm \(service.path)")
                return
            }
            // A manager that is not running (a container, no login session) has nothing to stop: say so, go on.
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = disable
            do {
                try process.run()
                process.waitUntilExit()
                if process.terminationStatus != 0 {
                    printError("warning: `\(disable.joined(separator: " "))` failed (exit \(process.terminationStatus)); removing the file anyway")
                }
            } catch {
                printError("warning: cannot run \(disable[0]): \(error.localizedDescription); removing the file anyway")
            }
            do {
                try FileManager.default.removeItem(atPath: service.path)
            } catch {
                printError("cannot remove \(service.path): \(error.localizedDescription)")
                throw ExitCode(1)
            }
            print("removed \(service.path)")
        }
    }
}

private func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return (path as NSString).standardizingPath }
    let joined = FileManager.default.currentDirectoryPath + "/" + path
    return (joined as NSString).standardizingPath
}
