// Helpers for the known_hosts, key-file, host-key and digest tests (SSH2Tests, TunnelConfigTests, TunnelEngineTests): temporary directories, running OpenSSH's own
// tools to produce reference files, and synthetic key blobs for tests that do not need real keys.

import Foundation

public enum KeyFixtures {
    /// A fresh directory under the system temp dir; each test gets its own so tests can run in parallel.
    public static func makeTempDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "ssh2tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    public static func removeTempDirectory(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Absolute path of a tool found in the usual places, or nil (tests then skip the cross-check).
    public static func tool(_ name: String) -> String? {
        for dir in ["/usr/bin", "/bin", "/usr/local/bin", "/opt/homebrew/bin"] {
            let path = dir + "/" + name
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    public static var hasSSHKeygen: Bool { tool("ssh-keygen") != nil }

    public struct ToolFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `tool` with `arguments` (and optional stdin), returning stdout; throws if it exits non-zero.
    @discardableResult
    public static func run(_ tool: String, _ arguments: [String], input: [UInt8]? = nil) throws -> String {
        guard let executable = self.tool(tool) else { throw ToolFailure(description: "\(tool) not found") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            try inputPipe.fileHandleForWriting.write(contentsOf: Data(input))
            try inputPipe.fileHandleForWriting.close()
        }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ToolFailure(description: "\(tool) \(arguments.joined(separator: " ")) failed: "
                + String(decoding: err, as: UTF8.self))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether this ssh-keygen still makes keys of `type` (OpenSSH 10 dropped DSA), found by trying once.
    public static func canGenerateKey(type: String) -> Bool {
        guard hasSSHKeygen, let dir = try? makeTempDirectory() else { return false }
        defer { removeTempDirectory(dir) }
        return (try? generateKey(in: dir, name: "probe", type: type)) != nil
    }

    /// Makes a key pair with ssh-keygen at `dir/name` (private) and `dir/name.pub`.
    public static func generateKey(
        in dir: String, name: String, type: String, bits: Int? = nil, format: String? = nil, passphrase: String = ""
    ) throws -> String {
        let path = dir + "/" + name
        var arguments = ["-q", "-t", type, "-N", passphrase, "-C", "test@\(name)", "-f", path]
        if let bits { arguments += ["-b", String(bits)] }
        if let format { arguments += ["-m", format] }
        try run("ssh-keygen", arguments)
        return path
    }

    /// (type, blob) from a one-line public key ("type base64 comment").
    public static func readPublicKey(_ path: String) throws -> (type: String, blob: [UInt8], base64: String) {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let blob = Data(base64Encoded: String(fields[1])) else {
            throw ToolFailure(description: "\(path) is not a public key")
        }
        return (String(fields[0]), Array(blob), String(fields[1]))
    }

    /// A well-formed but fake public key blob: string type, then string filler. Enough for known_hosts
    /// logic, which only checks that the blob names its own type.
    public static func fakeKey(type: String, seed: UInt8) -> [UInt8] {
        func sshString(_ bytes: [UInt8]) -> [UInt8] {
            let n = UInt32(bytes.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + bytes
        }
        return sshString(Array(type.utf8)) + sshString((0..<32).map { UInt8(truncatingIfNeeded: Int($0) * 7) &+ seed })
    }

    /// Writes `text` to `path`, readable by the owner only: key files must be (tunnel refuses others, as ssh does),
    /// and nothing a test writes needs more.
    public static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    public static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }
}
