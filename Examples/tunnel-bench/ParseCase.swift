// Config parsing speed (target: 10,000 lines with Includes in under 100 ms). No sshd, no comparison.
import Foundation
import TunnelConfig

struct ParseCase {
    /// Included files and hosts per file: 10 x 100 hosts x 10 lines, plus a main file, is 10,003 lines.
    var files = 10
    var hostsPerFile = 100
    var loads = 5

    /// Loads the generated config `loads` times; throws if it does not find every host.
    func run() throws {
        printNow("\n== config parsing")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tunnel-bench-parse-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory + "/conf.d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lineCount = 0
        for file in 0..<files {
            var text = ""
            for host in 0..<hostsPerFile {
                let name = "h\(file)-\(host)"
                text += """
                    # host \(name)
                    Host \(name) \(name).alias
                        HostName \(name).example.com
                        Port \(2000 + host)
                        User deploy
                        IdentityFile ~/.ssh/id_\(name)
                        LocalForward 127.0.0.1:\(10000 + file * 100 + host) db.internal:5432
                        ServerAliveInterval 15
                        StrictHostKeyChecking accept-new
                        ConnectTimeout 10

                    """
                lineCount += 10
            }
            try text.write(toFile: "\(directory)/conf.d/\(file).conf", atomically: true, encoding: .utf8)
        }
        let main = "\(directory)/main.conf"
        try "Include \(directory)/conf.d/*.conf\nHost *\n    ServerAliveCountMax 3\n".write(toFile: main, atomically: true, encoding: .utf8)
        lineCount += 3

        var timings: [Double] = []
        var hosts = 0
        for _ in 0..<loads {
            let start = monotonicNanoseconds()
            let config = try TunnelConfigFile.load(path: main)
            hosts = config.tunnelHostNames.count
            timings.append(Double(monotonicNanoseconds() - start) / 1e6)
        }
        // Each Host line names a host and its alias: both are tunnel hosts.
        guard hosts == 2 * files * hostsPerFile else { throw BenchError("config parse found \(hosts) of \(2 * files * hostsPerFile) tunnel hosts") }
        var resolveTimings: [Double] = []
        let config = try TunnelConfigFile.load(path: main)
        for _ in 0..<3 {
            let start = monotonicNanoseconds()
            _ = config.tunnelHosts
            resolveTimings.append(Double(monotonicNanoseconds() - start) / 1e6)
        }
        printNow(String(format: "config: %d lines in %d files, %d tunnel hosts: load+check %.1f ms (median of %d), resolving every host %.1f ms",
                     lineCount, files + 1, hosts, Stats.median(timings), loads, Stats.median(resolveTimings)))
    }
}
