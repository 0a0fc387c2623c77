// Looks at a private key file before libssh2 does, because libssh2's errors for a wrong file ("Unable to
// extract public key from private key file", "Wrong passphrase or invalid/unrecognized private key file
// format") don't say what is wrong. Knowing the key type also lets us explain why an RSA key is refused.
// Reads only the framing (PEM armor, OpenSSH PROTOCOL.key header, DER outline); never decrypts anything.

import Foundation
import Digests

public struct PrivateKeyFileInfo: Sendable, Equatable {
    public enum Format: Sendable, Equatable {
        /// "-----BEGIN OPENSSH PRIVATE KEY-----" (ssh-keygen's default since OpenSSH 7.8).
        case openSSH
        /// "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1, `ssh-keygen -m PEM`).
        case pemRSA
        /// "-----BEGIN EC PRIVATE KEY-----" (SEC 1).
        case pemEC
        /// "-----BEGIN DSA PRIVATE KEY-----".
        case pemDSA
        /// "-----BEGIN PRIVATE KEY-----" (PKCS#8, `ssh-keygen -m PKCS8`).
        case pkcs8
        /// "-----BEGIN ENCRYPTED PRIVATE KEY-----" (PKCS#8 with a passphrase; the key type is hidden).
        case pkcs8Encrypted
    }

    /// The path as given, so messages echo it.
    public var path: String
    public var format: Format
    /// "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ssh-dss", ...; "ecdsa" when only the family is
    /// known; nil when the file does not reveal it (encrypted PKCS#8).
    public var keyType: String?
    /// True when a passphrase is needed to use the key.
    public var isEncrypted: Bool

    public init(path: String, format: Format, keyType: String?, isEncrypted: Bool) {
        self.path = path
        self.format = format
        self.keyType = keyType
        self.isEncrypted = isEncrypted
    }

    /// Reads `path` and says what kind of private key it holds, or why it is not one. `path` is used as it is:
    /// `~` is the config layer's to expand (TunnelConfig does it as OpenSSH does, `~user` included), and libssh2,
    /// which reads the same path to authenticate, would not expand it either.
    ///
    /// A private key that others may read is refused, as OpenSSH refuses it ("UNPROTECTED PRIVATE KEY FILE"):
    /// the contents are judged first, so a public key or a wrong file given by mistake is named for what it is.
    public static func inspect(path: String) throws(PrivateKeyFileError) -> PrivateKeyFileInfo {
        let bytes = try PrivateKeyFileReader.read(path: path)
        let info = try inspect(contents: bytes, path: path)
        try PrivateKeyFilePermissions.check(path: path)
        return info
    }

    /// What `inspect(path:)` decides from the file's bytes alone (`path` only names the file in errors): the
    /// entry point for the fuzz target and unit tests.
    public static func inspect(contents bytes: [UInt8], path: String) throws(PrivateKeyFileError) -> PrivateKeyFileInfo {
        let (format, keyType, encrypted) = try PrivateKeyFileClassifier(path: path).classify(bytes)
        return PrivateKeyFileInfo(path: path, format: format, keyType: keyType, isEncrypted: encrypted)
    }
}

public struct PrivateKeyFileError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case notFound
        case unreadable
        case notAPrivateKey
        /// The file is a public key (often the `.pub` next to the private key).
        case publicKeyGiven
        /// Group or others may read or write the key file: refused, as OpenSSH refuses it.
        case unprotected
    }

    public var kind: Kind
    public var path: String
    /// Plain words, without the path.
    public var message: String

    public init(kind: Kind, path: String, message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    /// "path: message", e.g. "/home/me/.ssh/id_x: not a private key (expected an OpenSSH or PEM private key)".
    public var description: String { "\(path): \(message)" }
}

// MARK: - Reading the file

/// Gets the bytes, turning file-system failures into the error kinds users can act on.
private enum PrivateKeyFileReader {
    /// Real keys are a few kilobytes; refusing big files keeps a mistyped path (a disk image, a log) cheap.
    static let maximumSize = 1 << 20

    static func read(path: String) throws(PrivateKeyFileError) -> [UInt8] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PrivateKeyFileError(kind: .notFound, path: path, message: "no such file")
        }
        if isDirectory.boolValue {
            throw PrivateKeyFileError(kind: .unreadable, path: path, message: "is a directory, not a private key file")
        }
        guard fm.isReadableFile(atPath: path) else {
            throw PrivateKeyFileError(kind: .unreadable, path: path, message: "cannot read the file (permission denied)")
        }
        if let size = (try? fm.attributesOfItem(atPath: path))?[.size] as? NSNumber, size.intValue > maximumSize {
            throw PrivateKeyFileError(
                kind: .notAPrivateKey, path: path,
                message: "not a private key (the file is \(size.intValue) bytes; keys are a few kilobytes)")
        }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw PrivateKeyFileError(
                kind: .unreadable, path: path, message: "cannot read the file (\(error.localizedDescription))")
        }
    }
}

/// OpenSSH's rule for private key files (sshkey_perm_ok in authfile.c): a key file owned by the user must not be
/// accessible to group or others, or it is ignored. A key others can read is no longer a secret, and refusing it
/// is what makes the user notice.
enum PrivateKeyFilePermissions {
    static func check(path: String) throws(PrivateKeyFileError) {
        var status = stat()
        guard stat(path, &status) == 0 else { return }  // vanished meanwhile: libssh2 will say so
        let mode = Int(status.st_mode) & 0o777
        guard status.st_uid == getuid(), mode & 0o077 != 0 else { return }
        throw PrivateKeyFileError(
            kind: .unprotected, path: path,
            message: "UNPROTECTED PRIVATE KEY FILE: permissions \(String(format: "%04o", mode)) are too open "
                + "(it must be accessible to you alone), so this key is ignored; fix: chmod 600 \(path)")
    }
}

// MARK: - Recognising the contents

/// Decides what the bytes are. Everything is bounds-checked: garbage yields `.notAPrivateKey`, never a trap.
private struct PrivateKeyFileClassifier {
    let path: String

    typealias Result = (PrivateKeyFileInfo.Format, String?, Bool)

    func classify(_ bytes: [UInt8]) throws(PrivateKeyFileError) -> Result {
        let text = String(decoding: bytes, as: UTF8.self)
        // isNewline covers "\r\n", which Swift treats as a single Character (keys saved on Windows).
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard let firstLine = lines.first(where: { !$0.isEmpty }) else {
            throw notAKey(bytes.isEmpty ? "the file is empty" : "the file holds only blank lines")
        }

        if isOneLinePublicKey(firstLine) { throw publicKey() }
        if firstLine.hasPrefix("PuTTY-User-Key-File-") {
            throw notAKey("this is a PuTTY key; convert it with `puttygen KEY -O private-openssh -o NEWKEY`")
        }
        if firstLine.hasPrefix("---- BEGIN SSH2 PUBLIC KEY") { throw publicKey() }
        if firstLine.hasPrefix("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY") {
            throw notAKey("this is an SSH.com key; convert it with `ssh-keygen -i -f KEY > NEWKEY`")
        }

        // PEM files may carry several blocks (openssl puts "EC PARAMETERS" before "EC PRIVATE KEY"):
        // use the first block that is a key.
        var index = 0
        var sawPublicKeyBlock = false
        while let block = try nextPEMBlock(lines, from: &index) {
            switch block.label {
            case "OPENSSH PRIVATE KEY": return try openSSHKey(block)
            case "RSA PRIVATE KEY": return try legacyPEMKey(block, format: .pemRSA, keyType: "ssh-rsa")
            case "DSA PRIVATE KEY": return try legacyPEMKey(block, format: .pemDSA, keyType: "ssh-dss")
            case "EC PRIVATE KEY": return try legacyPEMKey(block, format: .pemEC, keyType: "ecdsa")
            case "PRIVATE KEY": return try pkcs8Key(block)
            case "ENCRYPTED PRIVATE KEY":
                _ = try derSequence(block)
                return (.pkcs8Encrypted, nil, true)
            case "PUBLIC KEY", "RSA PUBLIC KEY", "SSH2 PUBLIC KEY": sawPublicKeyBlock = true
            default: continue
            }
        }
        if sawPublicKeyBlock { throw publicKey() }
        throw notAKey("expected an OpenSSH or PEM private key")
    }

    // MARK: Errors

    private func notAKey(_ detail: String) -> PrivateKeyFileError {
        PrivateKeyFileError(kind: .notAPrivateKey, path: path, message: "not a private key (\(detail))")
    }

    private func damaged(_ detail: String) -> PrivateKeyFileError {
        PrivateKeyFileError(kind: .notAPrivateKey, path: path, message: "damaged private key (\(detail))")
    }

    private func publicKey() -> PrivateKeyFileError {
        let hint = path.hasSuffix(".pub") ? "; use the private key, probably \(path.dropLast(4))" : ""
        return PrivateKeyFileError(
            kind: .publicKeyGiven, path: path, message: "this is a public key, not a private key\(hint)")
    }

    // MARK: Public keys

    /// "ssh-ed25519 AAAA... comment" (a .pub file, or a -cert.pub): the base64 blob names the same type.
    private func isOneLinePublicKey(_ line: String) -> Bool {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2, let blob = Base64.decode(fields[1]) else { return false }
        return SSHWireReader.keyType(ofBlob: blob) == String(fields[0])
    }

    // MARK: PEM armor (RFC 7468, with RFC 1421 headers for legacy encryption)

    private struct PEMBlock {
        var label: String
        var headers: [String: String]
        var body: [UInt8]
    }

    /// The next "-----BEGIN X-----" ... "-----END X-----" block at or after `index`, or nil when none is left.
    private func nextPEMBlock(_ lines: [String], from index: inout Int) throws(PrivateKeyFileError) -> PEMBlock? {
        while index < lines.count {
            let line = lines[index]
            index += 1
            guard let label = armorLabel(line, kind: "BEGIN") else { continue }
            var headers: [String: String] = [:]
            var base64 = ""
            while index < lines.count {
                let inner = lines[index]
                index += 1
                if armorLabel(inner, kind: "END") != nil {
                    guard armorLabel(inner, kind: "END") == label else { throw damaged("BEGIN \(label) ends with \(inner)") }
                    guard let body = Base64.decode(base64), !body.isEmpty else {
                        throw damaged("the key data is not valid base64")
                    }
                    return PEMBlock(label: label, headers: headers, body: body)
                }
                if base64.isEmpty, let colon = inner.firstIndex(of: ":") {
                    headers[String(inner[..<colon])] = inner[inner.index(after: colon)...]
                        .trimmingCharacters(in: .whitespaces)
                } else {
                    base64 += inner
                }
            }
            throw damaged("truncated: no \"-----END \(label)-----\" line")
        }
        return nil
    }

    /// "X" from "-----BEGIN X-----" (kind "BEGIN") or "-----END X-----" (kind "END"); also the SSH.com
    /// "---- BEGIN X ----" spelling.
    private func armorLabel(_ line: String, kind: String) -> String? {
        for dashes in ["-----", "---- "] {
            let prefix = dashes + kind + " "
            let suffix = dashes == "-----" ? "-----" : " ----"
            if line.hasPrefix(prefix), line.hasSuffix(suffix), line.count >= prefix.count + suffix.count {
                return String(line.dropFirst(prefix.count).dropLast(suffix.count))
            }
        }
        return nil
    }

    // MARK: OpenSSH format (PROTOCOL.key)

    private func openSSHKey(_ block: PEMBlock) throws(PrivateKeyFileError) -> Result {
        let magic = Array("openssh-key-v1".utf8) + [0]
        var reader = SSHWireReader(block.body)
        guard reader.readBytes(magic.count) == magic else { throw damaged("missing the openssh-key-v1 header") }
        guard let cipher = reader.readName(), let kdf = reader.readName(), reader.readString() != nil,
              let keyCount = reader.readUInt32()
        else { throw damaged("truncated header") }
        // OpenSSH writes exactly one key per file and refuses any other count.
        guard keyCount == 1 else { throw damaged("holds \(keyCount) keys; expected 1") }
        guard let publicBlob = reader.readString(), let keyType = SSHWireReader.keyType(ofBlob: publicBlob) else {
            throw damaged("truncated or malformed public key")
        }
        guard let privateSection = reader.readString(), !privateSection.isEmpty else {
            throw damaged("truncated: the private part is missing")
        }
        let encrypted = cipher != "none"
        if !encrypted {
            // Unencrypted keys repeat a random check word; a mismatch or wrong type means corruption.
            guard kdf == "none" else { throw damaged("cipher \"none\" with key derivation \"\(kdf)\"") }
            var secret = SSHWireReader(privateSection)
            guard let check1 = secret.readUInt32(), let check2 = secret.readUInt32(), check1 == check2,
                  secret.readName() == keyType
            else { throw damaged("the private part does not match the public key") }
        }
        return (.openSSH, keyType, encrypted)
    }

    // MARK: Legacy PEM (PKCS#1 RSA, SEC 1 EC, OpenSSL DSA)

    private func legacyPEMKey(
        _ block: PEMBlock, format: PrivateKeyFileInfo.Format, keyType: String
    ) throws(PrivateKeyFileError) -> Result {
        // RFC 1421 encryption: the DER is ciphertext, so only the armor can be checked.
        if let procType = block.headers["Proc-Type"], procType.uppercased().hasSuffix("ENCRYPTED") {
            return (format, keyType, true)
        }
        var fields = try derSequence(block)
        guard let version = fields.next(), version.tag == DER.integer else {
            throw damaged("the key data is not a \(keyType) private key")
        }
        guard format == .pemEC else { return (format, keyType, false) }
        // ECPrivateKey: version, privateKey OCTET STRING, [0] curve OID (optional), [1] public key (optional).
        while let field = fields.next() {
            guard field.tag == DER.contextZero else { continue }
            var parameters = DER(field.content)
            if let oid = parameters.next(), oid.tag == DER.objectIdentifier {
                return (format, DER.curveKeyType(oid.content) ?? keyType, false)
            }
        }
        return (format, keyType, false)
    }

    // MARK: PKCS#8 (RFC 5208 / 5958)

    private func pkcs8Key(_ block: PEMBlock) throws(PrivateKeyFileError) -> Result {
        var fields = try derSequence(block)
        // PrivateKeyInfo: version INTEGER, AlgorithmIdentifier SEQUENCE { OID, parameters }, key OCTET STRING.
        guard let version = fields.next(), version.tag == DER.integer,
              let algorithm = fields.next(), algorithm.tag == DER.sequence
        else { throw damaged("the key data is not a PKCS#8 private key") }
        var identifier = DER(algorithm.content)
        guard let oid = identifier.next(), oid.tag == DER.objectIdentifier else {
            throw damaged("the key data is not a PKCS#8 private key")
        }
        var keyType: String?
        switch oid.content {
        case DER.rsaEncryption: keyType = "ssh-rsa"
        case DER.dsa: keyType = "ssh-dss"
        case DER.ed25519: keyType = "ssh-ed25519"
        case DER.ecPublicKey:
            if let curve = identifier.next(), curve.tag == DER.objectIdentifier {
                keyType = DER.curveKeyType(curve.content) ?? "ecdsa"
            } else {
                keyType = "ecdsa"
            }
        default: keyType = nil
        }
        return (.pkcs8, keyType, false)
    }

    /// The contents of the block's outer DER SEQUENCE, which must span the whole body (so truncation shows).
    private func derSequence(_ block: PEMBlock) throws(PrivateKeyFileError) -> DER {
        var outer = DER(block.body)
        guard let sequence = outer.next(), sequence.tag == DER.sequence, outer.isAtEnd else {
            throw damaged("the key data is truncated or not DER")
        }
        return DER(sequence.content)
    }
}

/// Just enough DER (X.690) to walk the outline of a key: single-byte tags, definite lengths.
/// Every read is bounds-checked; malformed input ends the iteration.
private struct DER: IteratorProtocol {
    static let integer: UInt8 = 0x02
    static let objectIdentifier: UInt8 = 0x06
    static let sequence: UInt8 = 0x30
    static let contextZero: UInt8 = 0xA0

    // Object identifier contents (without tag and length).
    static let rsaEncryption: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]  // 1.2.840.113549.1.1.1
    static let ecPublicKey: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]  // 1.2.840.10045.2.1
    static let dsa: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01]  // 1.2.840.10040.4.1
    static let ed25519: [UInt8] = [0x2B, 0x65, 0x70]  // 1.3.101.112
    static let nistP256: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]  // 1.2.840.10045.3.1.7
    static let nistP384: [UInt8] = [0x2B, 0x81, 0x04, 0x00, 0x22]  // 1.3.132.0.34
    static let nistP521: [UInt8] = [0x2B, 0x81, 0x04, 0x00, 0x23]  // 1.3.132.0.35

    static func curveKeyType(_ oid: [UInt8]) -> String? {
        switch oid {
        case nistP256: return "ecdsa-sha2-nistp256"
        case nistP384: return "ecdsa-sha2-nistp384"
        case nistP521: return "ecdsa-sha2-nistp521"
        default: return nil
        }
    }

    struct Element {
        var tag: UInt8
        var content: [UInt8]
    }

    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func next() -> Element? {
        guard offset + 2 <= bytes.count else { return nil }
        let tag = bytes[offset]
        var cursor = offset + 1
        var length = Int(bytes[cursor])
        cursor += 1
        if length & 0x80 != 0 {
            // Long form: the low bits count the length bytes. 0x80 (indefinite) is not DER.
            let count = length & 0x7F
            guard count >= 1, count <= 4, cursor + count <= bytes.count else { return nil }
            length = 0
            for byte in bytes[cursor..<cursor + count] { length = length << 8 | Int(byte) }
            cursor += count
        }
        guard length <= bytes.count - cursor else { return nil }
        offset = cursor + length
        return Element(tag: tag, content: Array(bytes[cursor..<cursor + length]))
    }
}
