#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import TunnelConfig

/// known_hosts files, parsed once and reused while they are unchanged (same inode, size and modification time).
/// A 20,000-line hashed file takes over a second to parse; every connect and reconnect of every host needs it.
/// Called on the thread pool, never on an event loop; safe from any thread.
final class KnownHostsCache: Sendable {
    static let shared = KnownHostsCache()

    private struct FileStamp: Equatable, Sendable {
        var inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
    }
    private struct Entry: Sendable {
        var stamps: [FileStamp?]
        var knownHosts: KnownHosts
    }
    private let entries = NIOLockedValueBox([[String]: Entry]())

    /// The parsed contents of every known_hosts file of `policy` (missing files count as empty).
    func load(_ policy: HostKeyPolicy) throws(HostKeyRefusal) -> KnownHosts {
        let files = policy.filesToRead
        let stamps = files.map(Self.stamp)
        if let cached = entries.withLockedValue({ $0[files] }), cached.stamps == stamps {
            return cached.knownHosts
        }
        let knownHosts = try HostKeyVerifier.loadKnownHosts(for: policy)
        entries.withLockedValue { $0[files] = Entry(stamps: stamps, knownHosts: knownHosts) }
        return knownHosts
    }

    private static func stamp(_ path: String) -> FileStamp? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        #if canImport(Darwin)
        let time = info.st_mtimespec
        #else
        let time = info.st_mtim
        #endif
        return FileStamp(inode: UInt64(info.st_ino), size: Int64(info.st_size),
                         seconds: Int(time.tv_sec), nanoseconds: Int(time.tv_nsec))
    }
}
