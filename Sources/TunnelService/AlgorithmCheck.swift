import TunnelConfig
import TunnelEngine

/// `Ciphers`, `MACs`, `KexAlgorithms` and `HostKeyAlgorithms` lines checked against what the linked libssh2
/// supports, for `tunnel check` (the command line never sees libssh2 itself).
public enum AlgorithmCheck {
    /// Lines that leave nothing usable (`errors`: such a host is not brought up) and names the library lacks
    /// (`warnings`: dropped), each line once however many hosts (or their jump hosts) use it.
    public static func problems(_ hosts: [HostConfig]) -> (errors: [ConfigError], warnings: [ConfigError]) {
        var errors: [ConfigError] = [], warnings: [ConfigError] = []
        for host in hosts.flatMap({ [$0] + $0.jumpChain }) {
            let preference = AlgorithmPreference.linked(host.algorithmLists)
            errors += preference.errors.filter { !errors.contains($0) }
            warnings += preference.warnings.filter { !warnings.contains($0) }
        }
        // In file order, as the parser reports.
        func inFileOrder(_ a: ConfigError, _ b: ConfigError) -> Bool {
            (a.location?.file ?? "", a.location?.line ?? 0) < (b.location?.file ?? "", b.location?.line ?? 0)
        }
        return (errors.sorted(by: inFileOrder), warnings.sorted(by: inFileOrder))
    }
}

extension HostConfig {
    /// The first `Ciphers`/`MACs`/`KexAlgorithms`/`HostKeyAlgorithms` line of this host or a jump host on its way
    /// that leaves nothing the linked libssh2 supports; nil when there is none.
    var algorithmProblem: ConfigError? {
        AlgorithmCheck.problems([self]).errors.first
    }
}
