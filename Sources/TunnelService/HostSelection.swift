import Logging
import TunnelConfig

/// What `tunnel up` and `tunnel check --connect` both do first: load the config file, log its warnings as
/// `FILE:LINE: warning: ...` (the same lines as a plain `tunnel check`), and pick the hosts: the ones named, or
/// every host `tunnel up` would bring up. Each caller words the failures in its own terms.
enum HostSelection {
    enum Failure: Error {
        case config(ConfigErrors)
        /// No host was named and no Host block has a forward.
        case noTunnels
        case unknownHosts([String], known: [String])
    }

    static func select(configPath: String, hostNames: [String], logger: Logger) throws(Failure) -> [HostConfig] {
        let config: TunnelConfigFile
        do {
            config = try TunnelConfigFile.load(path: configPath)
        } catch {
            throw .config(error)
        }
        for warning in config.warnings {
            logger.warning("\(warning.message)", metadata: warning.location.map { ["location": "\($0)"] } ?? [:])
        }
        if hostNames.isEmpty {
            guard !config.tunnelHostNames.isEmpty else { throw .noTunnels }  // tunnelHosts resolves every host: once
            return config.tunnelHosts
        }
        let unknown = hostNames.filter { !config.concreteHostNames.contains($0) }
        guard unknown.isEmpty else { throw .unknownHosts(unknown, known: config.concreteHostNames) }
        return hostNames.map(config.resolve(host:))
    }
}
