import Foundation
import Testing
import TunnelConfig

@Suite("Include")
struct IncludeTests {
    /// A context whose home is the scratch directory, so `~/.ssh` is ours.
    func context(_ dir: TemporaryDirectory) -> ConfigContext {
        ConfigContext(homeDirectory: dir.path, userName: "alice", environment: [:])
    }

    @Test func relativeGlobsAreUnderDotSSHInOrder() throws {
        let dir = try TemporaryDirectory()
        dir.write(".ssh/conf.d/20-b.conf", "Host b\n  LocalForward 2 x:2\n")
        dir.write(".ssh/conf.d/10-a.conf", "Host a\n  LocalForward 1 x:1\n")
        let main = dir.write("main.conf", "Include conf.d/*.conf\nInclude does-not-exist.conf ~/also-missing/*\n")
        let config = try TunnelConfigFile.load(path: main, context: context(dir))
        #expect(config.tunnelHostNames == ["a", "b"])
        #expect(config.resolve(host: "b").localForwards.first?.location.file.hasSuffix("conf.d/20-b.conf") == true)
    }

    @Test func includedFilesFollowTheIncludersBlock() throws {
        let dir = try TemporaryDirectory()
        // Lines before the included file's first Host inherit the includer's state;
        // its Host lines do not leak past the Include line.
        dir.write("inc.conf", "User included\nHost other\n  Port 7\n")
        let main = dir.write("main.conf", """
            Host db
              Include \(dir.path)/inc.conf
              Port 2200
            Host skipped
              Include ~/never.conf
            """)
        dir.write("never.conf", "Host *\n  HostName never.example.com\n")
        let config = try TunnelConfigFile.load(path: main, context: context(dir))
        let db = config.resolve(host: "db")
        #expect(db.user == "included")
        #expect(db.port == 2200)
        // For "other", inc.conf is included from a block that does not apply:
        // no Host line inside it can match (OpenSSH's "never match" rule).
        #expect(config.resolve(host: "other").port == 22)
        #expect(config.resolve(host: "other").user == "alice")
        // never.conf's `Host *` applies only through the "skipped" block.
        #expect(config.resolve(host: "db").hostName == "db")
        #expect(config.resolve(host: "skipped").hostName == "never.example.com")
    }

    @Test func errorsInIncludedFilesNameThatFile() throws {
        let dir = try TemporaryDirectory()
        let inc = dir.write("inc.conf", "# fine\nPort 8nope\n")
        let main = dir.write("main.conf", "Include \(inc)\nPort 0\n")
        #expect { try TunnelConfigFile.load(path: main, context: context(dir)) } throws: { error in
            (error as? ConfigErrors)?.errors.map(\.description) == [
                "\(inc):2: Port: bad port \"8nope\"", "\(main):2: Port: bad port \"0\" (must be 1-65535)",
            ]
        }
    }

    @Test func cyclesAndDepthAreBounded() throws {
        let dir = try TemporaryDirectory()
        let selfInclude = dir.write("self.conf", "Include \(dir.path)/self.conf\n")
        #expect { try TunnelConfigFile.load(path: selfInclude, context: context(dir)) } throws: { error in
            (error as? ConfigErrors)?.description.contains("includes itself") == true
        }
        // A chain of 20 distinct files: OpenSSH allows 16 levels of nesting.
        for i in 0..<20 { dir.write("chain\(i).conf", "Include \(dir.path)/chain\(i + 1).conf\n") }
        dir.write("chain20.conf", "Port 1\n")
        #expect { try TunnelConfigFile.load(path: dir.path + "/chain0.conf", context: context(dir)) } throws: { error in
            (error as? ConfigErrors)?.description.contains("too many nested includes") == true
        }
        // 16 levels are fine.
        let ok = try TunnelConfigFile.load(path: dir.path + "/chain4.conf", context: context(dir))
        #expect(ok.resolve(host: "x").port == 1)
    }
}
