// OpenSSH known_hosts files, read and appended by us rather than by libssh2's knownhost API, because we
// need OpenSSH's exact answers (negation, @revoked, "changed" vs "unknown", other key types for the same
// host) to explain a refusal plainly and to order host-key algorithms. Format: `man sshd`,
// "SSH_KNOWN_HOSTS FILE FORMAT". It lives beside the ssh_config parser because it is the same kind of work
// (an OpenSSH file, the same host-pattern language) and needs nothing from libssh2.

import Foundation
import Digests

/// One usable line of a known_hosts file.
public struct KnownHostsEntry: Sendable, Hashable {
    public enum Marker: Sendable, Hashable {
        case none
        /// `@cert-authority`: the key signs host certificates; it is not itself a host key.
        case certAuthority
        /// `@revoked`: this key must never be accepted for the matching hosts.
        case revoked
    }

    public var file: String
    public var line: Int
    public var marker: Marker
    /// The host field exactly as written: comma-separated patterns, or one `|1|salt|hash` hashed name.
    public var hostPatterns: String
    /// e.g. "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa".
    public var keyType: String
    /// The decoded public key blob.
    public var key: [UInt8]

    public init(file: String, line: Int, marker: Marker, hostPatterns: String, keyType: String, key: [UInt8]) {
        self.file = file
        self.line = line
        self.marker = marker
        self.hostPatterns = hostPatterns
        self.keyType = keyType
        self.key = key
    }

    /// "file:line", for messages that tell the user which line to edit.
    public var location: String { "\(file):\(line)" }
}

/// The answer to "may I trust this host key?".
public enum HostKeyCheck: Sendable, Equatable {
    /// An entry for the host holds exactly this key.
    case match(KnownHostsEntry)
    /// The host is known with the same key type but a different key: possible impersonation.
    case changed(old: KnownHostsEntry)
    /// A `@revoked` entry for the host holds this key.
    case revoked(KnownHostsEntry)
    /// No entry of this key type; `otherKeyTypes` lists the host's entries of other types, if any.
    case unknown(otherKeyTypes: [KnownHostsEntry])
}

public struct KnownHostsError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// The entries of one or more known_hosts files (e.g. `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`).
public struct KnownHosts: Sendable {
    /// A line that was ignored because it could not be understood; OpenSSH ignores such lines too, but we
    /// keep them so a caller can mention them when a check fails.
    public struct SkippedLine: Sendable, Hashable {
        public var file: String
        public var line: Int
        public var reason: String
        public var location: String { "\(file):\(line)" }
    }

    public var entries: [KnownHostsEntry]
    public var skippedLines: [SkippedLine]

    /// Entries given directly; none by default, which is what having no known_hosts file at all looks like.
    public init(entries: [KnownHostsEntry] = []) {
        self.entries = entries
        self.skippedLines = []
    }

    /// Reads `files` in order. A missing file counts as empty (a first connection has none); a file that
    /// exists but cannot be read is an error, since silently ignoring it could hide a revocation.
    public init(files: [String]) throws(KnownHostsError) {
        entries = []
        skippedLines = []
        for path in files {
            guard let text = try Self.readIfPresent(path) else { continue }
            var lineNumber = 0
            // "\r\n" is one Character in Swift, so it must be named to split files written on Windows.
            for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
                lineNumber += 1
                switch Self.parseLine(rawLine, file: path, line: lineNumber) {
                case .entry(let entry): entries.append(entry)
                case .skipped(let reason): skippedLines.append(SkippedLine(file: path, line: lineNumber, reason: reason))
                case .nothing: break
                }
            }
        }
    }

    /// The name OpenSSH stores and looks up: "host" on port 22, "[host]:port" otherwise. Lowercased (ASCII
    /// only), as ssh lowercases host names before using them, so lookups and hashed names agree with OpenSSH's.
    public static func lookupName(host: String, port: Int) -> String {
        let name = host.asciiLowercased
        // OpenSSH treats port 0 ("unspecified") like the default port.
        return port == 22 || port == 0 ? name : "[\(name)]:\(port)"
    }

    public func check(host: String, port: Int, keyType: String, key: [UInt8]) -> HostKeyCheck {
        let matcher = HostNameMatcher(lookupName: Self.lookupName(host: host, port: port))
        let forHost = entries.filter { matcher.matches($0.hostPatterns) }

        // A revoked key is refused however many other lines vouch for it.
        if let revoked = forHost.first(where: { $0.marker == .revoked && $0.keyType == keyType && $0.key == key }) {
            return .revoked(revoked)
        }
        // CA keys sign certificates; a plain host key never matches them.
        let plain = forHost.filter { $0.marker == .none }
        if let match = plain.first(where: { $0.keyType == keyType && $0.key == key }) {
            return .match(match)
        }
        if let old = plain.first(where: { $0.keyType == keyType }) {
            return .changed(old: old)
        }
        return .unknown(otherKeyTypes: plain)
    }

    /// Key types the host is known by (plain entries only), in file order without repeats, so the session can
    /// prefer host-key algorithms we can actually verify, as OpenSSH does.
    public func knownKeyTypes(host: String, port: Int) -> [String] {
        let matcher = HostNameMatcher(lookupName: Self.lookupName(host: host, port: port))
        var types: [String] = []
        for entry in entries where entry.marker == .none && !types.contains(entry.keyType) {
            if matcher.matches(entry.hostPatterns) { types.append(entry.keyType) }
        }
        return types
    }

    /// Appends "name keytype base64" (or the `|1|salt|hash` form when `hashed`) as a new line of `path`,
    /// creating the directory (0700) and the file (0600) if missing.
    public static func append(
        host: String, port: Int, keyType: String, key: [UInt8], to path: String, hashed: Bool = false
    ) throws(KnownHostsError) {
        let name = lookupName(host: host, port: port)
        // Whitespace, commas or a leading marker in a name would change what the line means when read back.
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0 == "," }),
              !name.hasPrefix("@"), !name.hasPrefix("|"), !name.hasPrefix("#")
        else { throw KnownHostsError(path: path, message: "cannot record host \"\(host)\": not a valid host name") }
        guard !keyType.isEmpty, !keyType.contains(where: { $0.isWhitespace }), !key.isEmpty else {
            throw KnownHostsError(path: path, message: "cannot record an empty or malformed \(keyType) key")
        }

        let hostField: String
        if hashed {
            var generator = SystemRandomNumberGenerator()
            let salt = (0..<20).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            let hash = Digest.hmacSHA1(key: salt, message: Array(name.utf8))
            hostField = "|1|\(Base64.encode(salt))|\(Base64.encode(hash))"
        } else {
            hostField = name
        }
        let line = "\(hostField) \(keyType) \(Base64.encode(key))\n"
        try appendLine(line, to: path)
    }

    // MARK: - Reading

    private static func readIfPresent(_ path: String) throws(KnownHostsError) -> String? {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else { return nil }
        if isDirectory.boolValue {
            throw KnownHostsError(path: path, message: "is a directory, not a known_hosts file")
        }
        guard fm.isReadableFile(atPath: path) else {
            throw KnownHostsError(path: path, message: "cannot read known_hosts file (permission denied)")
        }
        // Through a file handle, not `Data(contentsOf:)`: Foundation's whole-file read refuses character devices
        // ("permission denied" for `UserKnownHostsFile /dev/null`, a common way to say "remember nothing").
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw KnownHostsError(path: path, message: "cannot read known_hosts file (\(error.localizedDescription))")
        }
        // Lossy decoding: a stray non-UTF-8 byte spoils only its own line, which then fails to parse.
        return String(decoding: data, as: UTF8.self)
    }

    private enum ParsedLine {
        case entry(KnownHostsEntry)
        case skipped(String)
        case nothing
    }

    private static func parseLine(_ raw: Substring, file: String, line: Int) -> ParsedLine {
        let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        guard let first = fields.first, !first.hasPrefix("#") else { return .nothing }

        var rest = fields[...]
        var marker = KnownHostsEntry.Marker.none
        if first.hasPrefix("@") {
            switch first {
            case "@cert-authority": marker = .certAuthority
            case "@revoked": marker = .revoked
            default: return .skipped("unknown marker \(first)")
            }
            rest = rest.dropFirst()
        }
        guard rest.count >= 3 else { return .skipped("expected host names, key type and key") }
        let hostField = String(rest[rest.startIndex])
        let keyType = String(rest[rest.startIndex + 1])
        let keyText = rest[rest.startIndex + 2]

        if hostField.hasPrefix("|"), HashedHostName(hostField) == nil {
            return .skipped("malformed hashed host name")
        }
        if keyType.allSatisfy(\.isNumber) {
            return .skipped("SSH protocol 1 key (no longer supported)")
        }
        guard let blob = Base64.decode(keyText) else { return .skipped("key is not valid base64") }
        // The blob names its own type; a disagreement means a corrupted or hand-edited line.
        guard let blobType = KeyBlob.typeName(blob) else { return .skipped("key data is malformed") }
        guard blobType == keyType else { return .skipped("key type \(keyType) does not match key data (\(blobType))") }

        return .entry(KnownHostsEntry(
            file: file, line: line, marker: marker, hostPatterns: hostField, keyType: keyType, key: blob))
    }

    // MARK: - Appending

    private static func appendLine(_ line: String, to path: String) throws(KnownHostsError) {
        let fm = FileManager.default
        let directory = (path as NSString).deletingLastPathComponent
        do {
            if !directory.isEmpty, !fm.fileExists(atPath: directory) {
                try fm.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
        } catch {
            throw KnownHostsError(path: path, message: "cannot create directory \(directory) (\(error.localizedDescription))")
        }
        if !fm.fileExists(atPath: path) {
            guard fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw KnownHostsError(path: path, message: "cannot create known_hosts file")
            }
        }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw KnownHostsError(path: path, message: "cannot open known_hosts file for writing")
        }
        defer { try? handle.close() }
        do {
            var text = line
            let end = try handle.seekToEnd()
            if end > 0 {
                // A hand-edited file may lack its final newline; without one our line would join the last.
                try handle.seek(toOffset: end - 1)
                if try handle.read(upToCount: 1) != Data([UInt8(ascii: "\n")]) { text = "\n" + text }
                try handle.seekToEnd()
            }
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            throw KnownHostsError(path: path, message: "cannot write known_hosts file (\(error.localizedDescription))")
        }
    }
}

/// A `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` host field (`HashKnownHosts`, `ssh-keygen -H`).
struct HashedHostName {
    let salt: [UInt8]
    let hash: [UInt8]

    init?(_ field: String) {
        let parts = field.split(separator: "|", omittingEmptySubsequences: false)
        // "|1|salt|hash" splits into ["", "1", salt, hash]; "1" is the only hash scheme OpenSSH defines.
        guard parts.count == 4, parts[0].isEmpty, parts[1] == "1",
              let salt = Base64.decode(parts[2]), let hash = Base64.decode(parts[3]),
              salt.count == 20, hash.count == 20
        else { return nil }
        self.salt = salt
        self.hash = hash
    }

    func matches(_ lookupName: String) -> Bool {
        Digest.hmacSHA1(key: salt, message: Array(lookupName.utf8)) == hash
    }
}

/// Decides whether a host field applies to one lookup name, with OpenSSH's rules (hostfile.c calls
/// match_hostname): comma-separated patterns, `*` and `?` wildcards, a matching `!pattern` vetoes the whole
/// field. Case-insensitive the way OpenSSH is: match_hostname lowercases the name and match_pattern_list
/// lowercases each pattern, both ASCII only (tolower in the C locale).
struct HostNameMatcher {
    let lookupName: String

    init(lookupName: String) {
        self.lookupName = lookupName.asciiLowercased
    }

    func matches(_ hostField: String) -> Bool {
        if hostField.hasPrefix("|") {
            return HashedHostName(hostField)?.matches(lookupName) ?? false
        }
        // The same pattern language as `Host` lines; only the lowercasing is particular to known_hosts.
        let patterns = hostField.split(separator: ",", omittingEmptySubsequences: false)
            .map { HostPattern(String($0).asciiLowercased) }
        return patterns.matches(host: lookupName)
    }
}

/// The public key blob's own type name (RFC 4253 section 6.6: uint32 length, then the name), if well formed.
/// The blob is all we inspect here; the full wire reader lives with libssh2 in SSH2.
enum KeyBlob {
    static func typeName(_ blob: [UInt8]) -> String? {
        guard blob.count >= 4 else { return nil }
        let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
        guard length > 0, length <= blob.count - 4 else { return nil }
        let name = blob[4..<(4 + length)]
        // Algorithm names are printable ASCII (RFC 4251 section 6).
        guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: name, as: UTF8.self)
    }
}

extension String {
    /// ASCII letters lowercased, every other byte kept: what OpenSSH's lowercase() and tolower() do to host
    /// names, so hashed names and pattern matches agree with OpenSSH's for non-ASCII names too.
    var asciiLowercased: String {
        guard utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return self }
        return String(decoding: utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
