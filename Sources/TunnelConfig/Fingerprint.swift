import Digests

/// Key fingerprints as OpenSSH prints them.
public enum Fingerprint {
    /// "SHA256:" + unpadded base64 of SHA-256(key blob), exactly as `ssh-keygen -lf` prints it.
    public static func sha256(_ keyBlob: [UInt8]) -> String {
        "SHA256:" + Base64.encode(Digest.sha256(keyBlob), padded: false)
    }
}
