import ArgumentParser
import Foundation
import TunnelService

/// `--control PATH`, shared by every command that talks to (or is) the running `tunnel up`.
struct ControlOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Control socket (default: $XDG_RUNTIME_DIR/tunnel/control.sock, else ~/.tunnel/control.sock).", valueName: "PATH"))
    var control: String?

    var path: String { control ?? ControlSocketPath.defaultPath() }

    /// Send `command`; a failure to reach the server or a refused request is printed and exits 1.
    func send(_ command: ControlCommand) async throws -> ControlReply {
        let reply: ControlReply
        do {
            reply = try await ControlClient.send(command, path: path)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        guard reply.ok else {
            printError(reply.error ?? "request refused")
            for line in reply.errors ?? [] { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            throw ExitCode(1)
        }
        return reply
    }
}

extension Tunnel {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what the running `tunnel up` is doing: each host's state and each forward's traffic.",
            discussion: """
                Asks the running `tunnel up` over its control socket. Per host: up (since when, the server, its \
                host key, cipher and MAC), reconnecting (why, next try) or failed (why), reconnects and the last \
                error; per forward: active and total connections, bytes in and out, failed opens. --json prints \
                the control protocol's reply (schema in the README). --watch redraws every second with each \
                forward's throughput until Ctrl-C.
                """
        )

        @Flag(name: .long, help: "Print JSON (the control socket's reply) instead of the table.")
        var json = false

        @Flag(name: .long, help: "Redraw every second with per-forward throughput, until Ctrl-C.")
        var watch = false

        @OptionGroup var control: ControlOptions

        func validate() throws {
            if json && watch { throw ValidationError("--json and --watch cannot be used together") }
        }

        func run() async throws {
            if watch { return try await runWatch() }
            let reply = try await control.send(.status)
            if json {
                FileHandle.standardOutput.write(reply.encodedLine())
                return
            }
            guard let report = reply.status else { throw ExitCode(1) }
            FileHandle.standardOutput.write(Data(StatusTable.render(report, now: Date()).utf8))
        }

        private func runWatch() async throws {
            let terminal = isatty(STDOUT_FILENO) == 1
            var previous: (report: StatusReport, at: Date)?
            while true {
                let reply = try await control.send(.status)
                guard let report = reply.status else { throw ExitCode(1) }
                let now = Date()
                let rates = previous.map { StatusTable.rates(from: $0.report, to: report, interval: now.timeIntervalSince($0.at)) } ?? [:]
                previous = (report, now)
                // Plain ANSI: cursor home and clear screen on a terminal; a blank line between frames otherwise.
                let frame = (terminal ? "\u{1B}[H\u{1B}[2J" : "\n") + StatusTable.render(report, now: now, rates: rates)
                FileHandle.standardOutput.write(Data(frame.utf8))
                try await Task.sleep(for: .seconds(1))
            }
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop the named hosts of the running `tunnel up`, or all of them (the process exits 0).",
            discussion: "Each named host's listeners, connections and session close; the others run on."
        )

        @Argument(help: "Hosts to stop (default: all, and the process exits).")
        var hosts: [String] = []

        @OptionGroup var control: ControlOptions

        func run() async throws {
            let reply = try await control.send(.down(hosts: hosts))
            for line in reply.changes ?? [] { print(line) }
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-read the config of the running `tunnel up` (as SIGHUP does).",
            discussion: """
                Hosts whose settings did not change keep their session and open connections; added hosts come \
                up, removed ones go down, changed ones restart. A config with errors changes nothing: its \
                FILE:LINE errors are printed and the exit status is 1.
                """
        )

        @OptionGroup var control: ControlOptions

        func run() async throws {
            let reply = try await control.send(.reload)
            for line in reply.changes ?? [] { print(line) }
        }
    }
}
