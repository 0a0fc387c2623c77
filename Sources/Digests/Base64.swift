internal import Foundation

/// Standard base64 (RFC 4648 section 4) through Foundation, strict on input: OpenSSH files are machine-written, so
/// anything outside the alphabet means the data is not what we think it is. What is added here is only what
/// OpenSSH's forms need beyond Foundation: unpadded output (fingerprints) and unpadded input.
public enum Base64 {
    /// Encodes `bytes`; `padded: false` drops the trailing "=" as `ssh-keygen -l` does for fingerprints.
    public static func encode(_ bytes: [UInt8], padded: Bool = true) -> String {
        var text = Data(bytes).base64EncodedString()
        while !padded, text.hasSuffix("=") { text.removeLast() }
        return text
    }

    /// Decodes standard base64, padded or not. Returns nil for characters outside the alphabet (whitespace
    /// included: callers strip line breaks), misplaced "=", or an impossible length.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        var chars = Array(text.utf8)
        if !chars.contains(UInt8(ascii: "=")) {
            // Unpadded: complete the last group the way the padded form would (1 leftover character is no group).
            switch chars.count % 4 {
            case 1: return nil
            case 2: chars += [UInt8(ascii: "="), UInt8(ascii: "=")]
            case 3: chars.append(UInt8(ascii: "="))
            default: break
            }
        } else if chars.count % 4 != 0 {
            return nil
        }
        guard let data = Data(base64Encoded: Data(chars)) else { return nil }
        return Array(data)
    }
}
