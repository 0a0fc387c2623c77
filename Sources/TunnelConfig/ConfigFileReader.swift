// The only I/O in this module: reading a config file, refusing what cannot be one.

import Foundation

enum ConfigFileReader {
    /// Larger than any real ssh_config by orders of magnitude; protects
    /// against `tunnel up /dev/zero` or a log file passed by mistake.
    static let maximumSize = 10 * 1024 * 1024

    struct Failure: Error {
        var message: String
    }

    static func read(path: String) -> Result<String, Failure> {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return .failure(Failure(message: "cannot read \(path.quotedForMessage): no such file"))
        }
        if isDirectory.boolValue {
            return .failure(Failure(message: "cannot read \(path.quotedForMessage): it is a directory"))
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            return .failure(Failure(message: "cannot read \(path.quotedForMessage): permission denied or unreadable"))
        }
        defer { try? handle.close() }
        let data: Data
        do {
            // Read one byte past the limit to tell "exactly 10 MB" from "more";
            // never trust the reported size (a device or pipe reports 0).
            data = try handle.read(upToCount: maximumSize + 1) ?? Data()
        } catch {
            return .failure(Failure(message: "cannot read \(path.quotedForMessage): \(error.localizedDescription)"))
        }
        return decode(data, name: path)
    }

    static func decode(_ data: Data, name: String) -> Result<String, Failure> {
        if data.count > maximumSize {
            return .failure(Failure(message: "\(name.quotedForMessage) is larger than 10 MB; not a config file"))
        }
        // Searched in the raw buffer: `Data.firstIndex(of:)` is much slower.
        if let zero = data.withUnsafeBytes({ $0.firstIndex(of: 0) }) {
            return .failure(Failure(message: "\(name.quotedForMessage) is not a text file (NUL byte at offset \(zero))"))
        }
        guard let text = String(data: data, encoding: .utf8) else {
            return .failure(Failure(message: "\(name.quotedForMessage) is not a text file (not valid UTF-8)"))
        }
        return .success(text)
    }

    /// A stable name for a file, to notice a file including itself.
    static func identity(of path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }
}
