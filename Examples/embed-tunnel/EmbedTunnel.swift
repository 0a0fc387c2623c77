// embed-tunnel: how an app opens an SSH local forward in-process with the TunnelEngine library, without the CLI.
//
//   embed-tunnel CONFIG HOST     bring up HOST's LocalForwards from an ssh_config-syntax file until Ctrl-C
//
// The app gets a local port that reaches the target through the SSH server, uses it, then stops the tunnel.
import Foundation
import Logging
import NIOPosix
import TunnelConfig
import TunnelEngine

@main
struct EmbedTunnel {
    static func main() async {
        let arguments = CommandLine.arguments.dropFirst()
        guard arguments.count == 2, let configPath = arguments.first, let hostName = arguments.last else {
            print("usage: embed-tunnel CONFIG HOST")
            print("Opens the LocalForwards of HOST from CONFIG in-process, prints the bound ports, and keeps them up until Ctrl-C.")
            return
        }

        // 1. Settings: from a config file here; an app could also build ConnectionSettings and ForwardSpec by hand.
        let host: HostConfig
        do {
            host = try TunnelConfigFile.load(path: configPath).resolve(host: hostName)
        } catch {
            print(error)
            exit(1)
        }

        // 2. One event loop is plenty for one host: every libssh2 call for the session happens on it.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var logger = Logger(label: "embed-tunnel")
        logger.logLevel = .info
        let tunnel = HostTunnel(host: host, eventLoop: group.next(), logger: logger)

        // 3. start() binds the listeners, then connects, verifies the host key and authenticates.
        do {
            let session = try await tunnel.start()
            print("\(hostName): up, host key \(session.hostKeyType) \(session.hostKeyFingerprint), listening on \(tunnel.boundAddresses.joined(separator: ", "))")
        } catch {
            print("\(hostName): \(error)")
            try? await group.shutdownGracefully()
            exit(1)
        }

        // 4. Use it: here, wait until the session ends or the user presses Ctrl-C; then report the counters.
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .main)
        let ended: Void = await withCheckedContinuation { continuation in
            let once = Once(continuation)
            interrupt.setEventHandler { once.resume() }
            interrupt.resume()
            tunnel.sessionEnded?.whenComplete { _ in once.resume() }
        }
        _ = ended
        await tunnel.stop()
        let counters = tunnel.counters.snapshot
        print("\(hostName): stopped after \(counters.connectionsAccepted) connections, \(counters.bytesSent) bytes up, \(counters.bytesReceived) bytes down")
        try? await group.shutdownGracefully()
    }
}

/// Resumes a continuation at most once, whichever event comes first.
final class Once: @unchecked Sendable {
    private var continuation: CheckedContinuation<Void, Never>?
    private let lock = NSLock()
    init(_ continuation: CheckedContinuation<Void, Never>) { self.continuation = continuation }
    func resume() {
        lock.lock()
        let pending = continuation
        continuation = nil
        lock.unlock()
        pending?.resume()
    }
}
