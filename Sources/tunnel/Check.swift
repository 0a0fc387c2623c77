import ArgumentParser
import Foundation
import TunnelConfig

extension Tunnel {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a config file without connecting.",
            discussion: "Exit 0 with a summary of each host that would come up; exit 1 with one FILE:LINE line per problem."
        )

        @Argument(help: "Config file in ssh_config syntax.")
        var file: String

        func run() throws {
            let config: TunnelConfigFile
            do {
                config = try TunnelConfigFile.load(path: file)
            } catch {
                for problem in error.errors { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
                throw ExitCode(1)
            }
            for warning in config.warnings { FileHandle.standardError.write(Data("\(warning)\n".utf8)) }
            if config.tunnelHostNames.isEmpty {
                print("\(file): OK, but no Host has a forward: `tunnel up` would have nothing to do")
                return
            }
            for host in config.tunnelHosts {
                print("\(host.name): \(host.user)@\(host.hostName):\(host.port)")
                for forward in host.localForwards { print("  LocalForward \(forward)") }
                for forward in host.remoteForwards { print("  RemoteForward \(forward) (not supported yet)") }
                for forward in host.dynamicForwards { print("  DynamicForward \(forward) (not supported yet)") }
            }
        }
    }
}
