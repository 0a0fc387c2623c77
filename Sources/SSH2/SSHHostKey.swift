import CLibSSH2

/// A server's host key as received in the handshake.
public struct SSHHostKey: Sendable, Equatable {
    /// The SSH wire-format public key blob (what known_hosts stores base64-encoded).
    public var blob: [UInt8]
    /// The key type name as known_hosts writes it ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", ...).
    public var typeName: String

    public init(blob: [UInt8], typeName: String) {
        self.blob = blob
        self.typeName = typeName
    }

    init(blob: [UInt8], libssh2Type: Int32) {
        // The blob starts with its own type name (uint32 length + name); trust it over libssh2's enum when present.
        self.blob = blob
        self.typeName = SSHHostKey.embeddedTypeName(blob) ?? SSHHostKey.name(forLibSSH2Type: libssh2Type)
    }

    static func embeddedTypeName(_ blob: [UInt8]) -> String? {
        guard blob.count >= 4 else { return nil }
        let length = Int(blob[0]) << 24 | Int(blob[1]) << 16 | Int(blob[2]) << 8 | Int(blob[3])
        guard length > 0, length <= 64, blob.count >= 4 + length else { return nil }
        return String(decoding: blob[4..<(4 + length)], as: UTF8.self)
    }

    static func name(forLibSSH2Type type: Int32) -> String {
        switch type {
        case LIBSSH2_HOSTKEY_TYPE_RSA: return "ssh-rsa"
        case LIBSSH2_HOSTKEY_TYPE_DSS: return "ssh-dss"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return "ecdsa-sha2-nistp256"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return "ecdsa-sha2-nistp384"
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return "ecdsa-sha2-nistp521"
        case LIBSSH2_HOSTKEY_TYPE_ED25519: return "ssh-ed25519"
        default: return "unknown"
        }
    }

    /// The host-key algorithm names libssh2 negotiates for a known_hosts key type (RSA keys sign several ways).
    public static func algorithms(forKeyType keyType: String) -> [String] {
        switch keyType {
        case "ssh-rsa": return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        default: return [keyType]
        }
    }

    /// libssh2 1.10's host-key algorithms in our default order of preference.
    public static let defaultAlgorithms = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa",
    ]
}
