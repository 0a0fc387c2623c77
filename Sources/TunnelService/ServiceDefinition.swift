import Foundation

/// The service manager `tunnel service install` writes for: systemd on Linux, launchd on macOS.
public enum ServiceManager: String, Sendable, CaseIterable {
    case systemd
    case launchd

    /// The one this machine runs.
    public static var native: ServiceManager {
        #if os(macOS)
        return .launchd
        #else
        return .systemd
        #endif
    }
}

/// Whose service: the user's own (runs while they are logged in, or always with lingering), or the machine's.
public enum ServiceScope: String, Sendable, CaseIterable {
    case user
    case system
}

/// What `tunnel service install` writes: a systemd unit or a launchd property list that runs `tunnel up FILE` in the
/// foreground and restarts it when it fails, where it goes, and the commands that turn it on and off. Pure: the
/// caller decides whether to write it or print it, so every byte of it is unit-tested on any platform.
public struct ServiceDefinition: Sendable, Equatable {
    public let manager: ServiceManager
    public let scope: ServiceScope
    /// Absolute path of the `tunnel` binary the service runs.
    public let executable: String
    /// Absolute path of the config file it brings up.
    public let configPath: String
    /// More `tunnel up` options (`--metrics 127.0.0.1:9469`).
    public let upOptions: [String]
    /// `tunnel` by default; another name lets one machine run several configs as separate services.
    public let name: String
    /// The account a system service runs as (its keys, its known_hosts); nil: root. Unused for user services.
    public let systemUser: String?
    /// The installing user's home directory: where user services go.
    public let home: String

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case notAbsolute(String)
        case badName(String)

        public var description: String {
            switch self {
            case .notAbsolute(let path): return "\(path): the service needs an absolute path"
            case .badName(let name): return "service name '\(name)': use letters, digits, '-', '_' and '.' only"
            }
        }
    }

    public init(manager: ServiceManager, scope: ServiceScope, executable: String, configPath: String,
                upOptions: [String] = [], name: String = "tunnel", systemUser: String? = nil, home: String) throws(Problem) {
        for path in [executable, configPath, home] where !path.hasPrefix("/") { throw .notAbsolute(path) }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.isEmpty, name.allSatisfy(allowed.contains), !name.hasPrefix(".") else { throw .badName(name) }
        self.manager = manager
        self.scope = scope
        self.executable = executable
        self.configPath = configPath
        self.upOptions = upOptions
        self.name = name
        self.systemUser = systemUser == "root" ? nil : systemUser
        self.home = home
    }

    /// The config `tunnel up` reads when given none: `$XDG_CONFIG_HOME/tunnel/tunnels.conf`, else
    /// `~/.config/tunnel/tunnels.conf`.
    public static func defaultConfigPath(environment: [String: String] = ProcessInfo.processInfo.environment,
                                         home: String = NSHomeDirectory()) -> String {
        if let base = environment["XDG_CONFIG_HOME"], base.hasPrefix("/") { return base + "/tunnel/tunnels.conf" }
        return home + "/.config/tunnel/tunnels.conf"
    }

    /// launchd wants a reverse-DNS label; systemd a unit name.
    public var label: String { manager == .launchd ? "org.tunnel.\(name)" : "\(name).service" }

    /// Where the file goes.
    public var path: String {
        switch (manager, scope) {
        case (.systemd, .user): return home + "/.config/systemd/user/\(label)"
        case (.systemd, .system): return "/etc/systemd/system/\(label)"
        case (.launchd, .user): return home + "/Library/LaunchAgents/\(label).plist"
        case (.launchd, .system): return "/Library/LaunchDaemons/\(label).plist"
        }
    }

    /// The one command that starts the service now and at every boot (or login).
    public var enableCommand: String {
        switch (manager, scope) {
        case (.systemd, .user): return "systemctl --user daemon-reload && systemctl --user enable --now \(label)"
        case (.systemd, .system): return "sudo systemctl daemon-reload && sudo systemctl enable --now \(label)"
        case (.launchd, .user): return "launchctl bootstrap gui/$(id -u) \(Self.shellQuoted(path))"
        case (.launchd, .system): return "sudo launchctl bootstrap system \(Self.shellQuoted(path))"
        }
    }

    /// The command that stops it and keeps it from starting again; `tunnel service uninstall` runs it before it
    /// removes the file (systemd cannot disable a unit whose file is gone).
    public var disableArguments: [String] {
        switch (manager, scope) {
        case (.systemd, .user): return ["systemctl", "--user", "disable", "--now", label]
        case (.systemd, .system): return ["systemctl", "disable", "--now", label]
        case (.launchd, .user): return ["launchctl", "bootout", "gui/\(getuid())/\(label)"]
        case (.launchd, .system): return ["launchctl", "bootout", "system/\(label)"]
        }
    }

    /// Where the service's log lines end up, for the message after installing.
    public var logsCommand: String {
        switch (manager, scope) {
        case (.systemd, .user): return "journalctl --user -u \(label) -f"
        case (.systemd, .system): return "journalctl -u \(label) -f"
        case (.launchd, _): return "tail -f \(Self.shellQuoted(launchdLogPath))"
        }
    }

    /// The file's contents.
    public var contents: String {
        switch manager {
        case .systemd: return systemdUnit
        case .launchd: return launchdPropertyList
        }
    }

    // MARK: systemd

    private var systemdUnit: String {
        var lines = [
            "# Written by `tunnel service install`; `tunnel service uninstall` removes it.",
            "[Unit]",
            "Description=tunnel: SSH tunnels of \(configPath)",
            // Name resolution and routes should be there before the first attempt (it would retry anyway).
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            // tunnel says READY=1 over NOTIFY_SOCKET once every host is up or has failed for good.
            "Type=notify",
            "NotifyAccess=main",
            "ExecStart=\(Self.systemdCommandLine([executable, "up", configPath] + upOptions))",
            "ExecReload=/bin/kill -HUP $MAINPID",
            // A clean stop exits 0 and stays stopped; anything else (no host could come up, a crash) restarts.
            "Restart=on-failure",
            "RestartSec=5",
            // Log lines go to the journal, which keeps its own time stamps.
            "StandardError=journal",
        ]
        if scope == .system, let systemUser { lines.append("User=\(systemUser)") }
        // Hardening that leaves ssh working: keys and known_hosts under $HOME stay readable and writable
        // (no ProtectHome), sockets are the kinds tunnel opens (netlink: local interface lookups for Match).
        lines += [
            "NoNewPrivileges=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "RestrictRealtime=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ]
        if scope == .system {
            // Namespacing options: for a system manager only (a user manager needs unprivileged user namespaces).
            lines += [
                "PrivateTmp=yes",
                "ProtectSystem=full",
                "ProtectKernelTunables=yes",
                "ProtectKernelModules=yes",
                "ProtectControlGroups=yes",
            ]
        }
        lines += [
            "",
            "[Install]",
            "WantedBy=\(scope == .user ? "default.target" : "multi-user.target")",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// systemd's own quoting (systemd.service(5) "Command lines"): each word in double quotes when it needs them,
    /// with `\` and `"` escaped, `%` doubled (specifiers) and `$` doubled (variable expansion).
    static func systemdCommandLine(_ words: [String]) -> String {
        words.map { word in
            var escaped = word.replacingOccurrences(of: "%", with: "%%").replacingOccurrences(of: "$", with: "$$")
            let plain = !escaped.isEmpty && escaped.allSatisfy { !$0.isWhitespace && !"\"'\\;".contains($0) }
            if plain { return escaped }
            escaped = escaped.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        }.joined(separator: " ")
    }

    // MARK: launchd

    var launchdLogPath: String {
        scope == .user ? home + "/Library/Logs/\(name).log" : "/Library/Logs/\(name).log"
    }

    private var launchdPropertyList: String {
        var plist: [String: Any] = [
            "Label": label,
            "ProgramArguments": [executable, "up", configPath] + upOptions,
            "RunAtLoad": true,
            // Restart when it fails, not after a clean stop (exit 0), as systemd's Restart=on-failure.
            "KeepAlive": ["SuccessfulExit": false],
            "ThrottleInterval": 5,
            "ProcessType": "Background",
            "StandardErrorPath": launchdLogPath,
            "StandardOutPath": launchdLogPath,
        ]
        if scope == .system, let systemUser { plist["UserName"] = systemUser }
        // Foundation writes the XML (escaping included); it cannot fail for these plain types.
        let data = (try? PropertyListSerialization.data(fromPropertyList: plist, format: .xml, options: 0)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// A word for /bin/sh, in single quotes when it needs them.
    static func shellQuoted(_ word: String) -> String {
        if !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "/._-+:@".contains($0) }) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
