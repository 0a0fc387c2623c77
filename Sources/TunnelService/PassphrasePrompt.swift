import Digests
import Foundation
import TunnelEngine
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where passphrases for encrypted keys come from, following OpenSSH's rules (ssh(1), SSH_ASKPASS):
/// the `SSH_ASKPASS` program when `SSH_ASKPASS_REQUIRE=force`, or when there is no terminal but a `DISPLAY`
/// (or `SSH_ASKPASS_REQUIRE=prefer` with a `DISPLAY`); otherwise the terminal, if there is one. With neither, nobody
/// is asked: tunnel must never hang a background job on a prompt.
public struct PassphrasePrompt: Sendable {
    public enum Method: Sendable, Equatable {
        case askpass(program: String)
        case terminal
    }

    public let method: Method

    /// Nil when there is no way to ask.
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment,
                                hasTerminal: Bool = isatty(STDIN_FILENO) != 0) -> PassphrasePrompt? {
        let require = environment["SSH_ASKPASS_REQUIRE"] ?? ""
        let hasDisplay = !(environment["DISPLAY"] ?? "").isEmpty
        if let program = environment["SSH_ASKPASS"], !program.isEmpty, require != "never" {
            if require == "force" || (hasDisplay && (require == "prefer" || !hasTerminal)) {
                return PassphrasePrompt(method: .askpass(program: program))
            }
        }
        return hasTerminal ? PassphrasePrompt(method: .terminal) : nil
    }

    /// Ask for the passphrase of `keyPath`; nil if the user gave none (empty input, askpass failed).
    public func ask(forKey keyPath: String) -> String? {
        ask(prompt: "Enter passphrase for key '\(keyPath)': ")
    }

    /// Ask a password or a keyboard-interactive question during authentication, the same way.
    public func ask(_ request: SecretRequest) -> String? {
        var prompt = request.prompt
        if request.kind == .keyboardInteractive {
            // The server's prompt ("Password: ") alone does not say which host asks.
            prompt = "(\(request.peer)) " + (request.instruction.isEmpty ? "" : request.instruction + " ") + prompt
        }
        return ask(prompt: prompt)
    }

    /// Ask with `prompt` shown; nil if the user gave none.
    public func ask(prompt: String) -> String? {
        switch method {
        case .terminal:
            // getpass reads from /dev/tty with echo off into a static buffer, which keeps the secret until the next
            // call: wiped as soon as it is copied.
            guard let answer = getpass(prompt) else { return nil }
            let text = String(cString: answer)
            SecureMemory.wipe(UnsafeMutableRawBufferPointer(start: answer, count: strlen(answer)))
            return text.isEmpty ? nil : text
        case .askpass(let program):
            let process = Process()
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = [prompt]
            let output = Pipe()
            process.standardOutput = output
            do { try process.run() } catch { return nil }
            var data = output.fileHandleForReading.readDataToEndOfFile()
            // The answer's bytes are wiped once the String is made (this Data is the only reference to them).
            defer { data.withUnsafeMutableBytes { SecureMemory.wipe($0) } }
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { return nil }
            var text = String(decoding: data, as: UTF8.self)
            if text.hasSuffix("\n") { text.removeLast() }
            return text.isEmpty ? nil : text
        }
    }
}
