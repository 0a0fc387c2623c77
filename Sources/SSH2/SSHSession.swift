import CLibSSH2
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The byte stream a session runs over. libssh2 never touches a socket of ours: its send/receive callbacks land here,
/// so the same session works over TCP today and over another SSH channel (ProxyJump) later.
///
/// Both calls happen synchronously inside libssh2 calls made by the session's owner, on the owner's thread.
public protocol SSHByteTransport: AnyObject {
    /// Copy up to `buffer.count` bytes from the server into `buffer`. Return the count, 0 at end of stream,
    /// or `nil` when nothing is there yet (libssh2 then reports "would block").
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int?
    /// Queue bytes for the server. Must accept all of them: libssh2 1.10 treats a partly sent packet as pending and
    /// fails (`LIBSSH2_ERROR_BAD_USE`) when any other call then sends, so backpressure belongs to the caller, above.
    func send(_ bytes: UnsafeRawBufferPointer)
}

/// The result of a non-blocking libssh2 step: finished with a value, or "call again when more bytes have moved".
public enum SSHStep<Value> {
    case done(Value)
    case wouldBlock

    public var value: Value? {
        if case .done(let value) = self { return value }
        return nil
    }
}

/// One SSH session (RFC 4253 transport + RFC 4252 auth) over a caller-supplied byte transport.
///
/// Not thread-safe by design: the owner drives every call from one thread (in tunnel: one NIO event loop).
/// Every call is non-blocking and returns `.wouldBlock` when it needs more bytes from the server; call it again
/// after feeding the transport. Channels keep their session alive, and `invalidate()` makes every channel call fail
/// cleanly, so no channel pointer outlives the session it belongs to.
public final class SSHSession {
    let raw: OpaquePointer
    private let transport: SSHByteTransport
    /// libssh2_session_handshake insists on a socket and calls fcntl on it; a private non-blocking /dev/null stands in.
    private let placeholderFD: Int32
    private var handshakeDone = false
    public private(set) var isInvalidated = false
    /// Once set, the transport reads as end-of-stream, so libssh2 marks the socket disconnected and every pending
    /// close or free finishes instead of waiting for a reply that can never come (session_free would spin otherwise).
    private var transportEnded = false
    /// The server's last SSH_MSG_DEBUG text, and how many it has sent: a caller notes the count before a request
    /// and reads the text after a refusal, to report the server's own words (see `requestRemoteListener`).
    public private(set) var lastServerMessage: String?
    public private(set) var serverMessageCount = 0
    /// Set only during `userauthKeyboardInteractive`.
    private var interactiveAnswerer: ((InteractiveQuestions) -> [String]?)?
    /// Set only during `userauthPublicKey`.
    private var publicKeySigner: (([UInt8]) -> [UInt8]?)?

    public init(transport: SSHByteTransport) throws(SSH2Error) {
        try SSH2Library.ensureInitialised()
        let fd = open("/dev/null", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw SSH2Error(code: 0, message: String(cString: strerror(errno)), operation: "open /dev/null for the session")
        }
        self.placeholderFD = fd
        self.transport = transport
        // The session object is created first with a null abstract, then pointed at `self` once it exists.
        guard let session = tunnel_ssh2_session_init(nil) else {
            close(fd)
            throw SSH2Error(code: LIBSSH2_ERROR_ALLOC, message: "libssh2_session_init returned NULL", operation: "create an SSH session")
        }
        self.raw = session
        if let abstract = libssh2_session_abstract(session) {
            abstract.pointee = Unmanaged.passUnretained(self).toOpaque()
        }
        libssh2_session_set_blocking(session, 0)
        tunnel_ssh2_set_transport(session, sshReceiveCallback, sshSendCallback)
        tunnel_ssh2_set_debug_callback(session, sshDebugCallback)
    }

    deinit {
        transportEnded = true
        libssh2_session_free(raw)
        close(placeholderFD)
    }

    // MARK: - Setup

    /// Preferred host-key algorithms, most wanted first (e.g. the types known_hosts already has for this host, so the
    /// server offers a key we can check). Unknown names are dropped. Call before `handshake()`.
    public func preferHostKeyAlgorithms(_ names: [String]) {
        prefer(names, for: .hostKey)
    }

    /// The algorithms of one kind to offer, most wanted first (only these are offered); names this libssh2 does not
    /// support are dropped first, and an empty result leaves libssh2's own list. Call before `handshake()`.
    public func prefer(_ names: [String], for kind: SSHAlgorithmKind) {
        // Only names this libssh2 knows: method_pref strips unknown ones with an overlapping memcpy (undefined
        // behaviour, flagged by AddressSanitizer), so they never reach it.
        let supported = Set(supportedAlgorithms(kind.methodTypes[0]))
        let usable = names.filter { supported.contains($0) }
        guard !usable.isEmpty else { return }
        for type in kind.methodTypes {
            _ = usable.joined(separator: ",").withCString { libssh2_session_method_pref(raw, type, $0) }
        }
    }

    /// The algorithms of one kind (`LIBSSH2_METHOD_*`) that the linked libssh2 supports.
    public func supportedAlgorithms(_ methodType: Int32) -> [String] {
        var list: UnsafeMutablePointer<UnsafePointer<CChar>?>? = nil
        let count = libssh2_session_supported_algs(raw, methodType, &list)
        guard count > 0, let list else { return [] }
        defer { libssh2_free(raw, list) }
        return (0..<Int(count)).compactMap { list[$0].map { String(cString: $0) } }
    }

    /// Key exchange and host-key receipt. Does not judge the host key: see `hostKey`, and TunnelEngine's `HostKeyVerifier`.
    public func handshake() throws(SSH2Error) -> SSHStep<Void> {
        if handshakeDone { return .done(()) }
        let rc = libssh2_session_handshake(raw, libssh2_socket_t(placeholderFD))
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw lastError(rc, operation: "SSH handshake") }
        handshakeDone = true
        return .done(())
    }

    /// The MAC algorithm the server uses for what it sends (after the handshake), as libssh2 names it.
    public var inboundMAC: String? {
        libssh2_session_methods(raw, LIBSSH2_METHOD_MAC_SC).map { String(cString: $0) }
    }

    /// The algorithms the handshake settled on (nil before it is done).
    public var negotiatedMethods: SSHNegotiatedMethods? {
        guard handshakeDone else { return nil }
        func method(_ type: Int32) -> String {
            libssh2_session_methods(raw, type).map { String(cString: $0) } ?? ""
        }
        return SSHNegotiatedMethods(
            keyExchange: method(LIBSSH2_METHOD_KEX), hostKey: method(LIBSSH2_METHOD_HOSTKEY),
            cipherClientToServer: method(LIBSSH2_METHOD_CRYPT_CS), cipherServerToClient: method(LIBSSH2_METHOD_CRYPT_SC),
            macClientToServer: method(LIBSSH2_METHOD_MAC_CS), macServerToClient: method(LIBSSH2_METHOD_MAC_SC),
            compressionClientToServer: method(LIBSSH2_METHOD_COMP_CS), compressionServerToClient: method(LIBSSH2_METHOD_COMP_SC))
    }

    /// The server's host key after the handshake.
    public var hostKey: SSHHostKey? {
        var length = 0
        var type: Int32 = 0
        guard let pointer = libssh2_session_hostkey(raw, &length, &type), length > 0 else { return nil }
        let blob = pointer.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
        return SSHHostKey(blob: blob, libssh2Type: type)
    }

    /// Public-key authentication with a private key file; libssh2 derives the public half from it.
    public func authenticate(user: String, privateKeyFile: String, passphrase: String?) throws(SSH2Error) -> SSHStep<Void> {
        let rc = user.withCString { userPointer in
            privateKeyFile.withCString { keyPointer in
                withOptionalCString(passphrase) { passphrasePointer in
                    tunnel_ssh2_userauth_publickey_fromfile(raw, userPointer, UInt32(strlen(userPointer)), nil, keyPointer, passphrasePointer)
                }
            }
        }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw lastError(rc, operation: "public-key authentication as \(user) with \(privateKeyFile)") }
        return .done(())
    }

    /// The methods the server would take for `user` (SSH_MSG_USERAUTH_FAILURE's list, asked with the "none"
    /// method). `.done(nil)`: the server let the user in without any method (libssh2 is then authenticated).
    public func userauthList(user: String) throws(SSH2Error) -> SSHStep<[String]?> {
        let list = user.withCString { libssh2_userauth_list(raw, $0, UInt32(strlen($0))) }
        if let list {
            return .done(String(cString: list).split(separator: ",").map(String.init))
        }
        if libssh2_userauth_authenticated(raw) != 0 { return .done(nil) }
        let code = libssh2_session_last_errno(raw)
        if code == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        throw lastError(code, operation: "ask the server which authentication methods it takes for \(user)")
    }

    /// Password authentication (RFC 4252 section 8). Repeat with the same arguments after `.wouldBlock`.
    public func userauthPassword(user: String, password: String) throws(SSH2Error) -> SSHStep<Void> {
        let rc = user.withCString { userPointer in
            password.withCString { passwordPointer in
                libssh2_userauth_password_ex(raw, userPointer, UInt32(strlen(userPointer)), passwordPointer,
                                             UInt32(strlen(passwordPointer)), nil)
            }
        }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw lastError(rc, operation: "password authentication as \(user)") }
        return .done(())
    }

    /// One round of questions from the server in keyboard-interactive authentication (RFC 4256).
    public struct InteractiveQuestions: Sendable {
        /// The server's name for the round and its instruction; often empty.
        public var name: String
        public var instruction: String
        public var prompts: [(text: String, echo: Bool)]
    }

    /// Keyboard-interactive authentication (RFC 4256): `answer` is called, on the calling thread and inside the
    /// libssh2 call, for each round of questions the server sends, and returns one answer per prompt (nil: no
    /// answer, which the server takes as a wrong one). Repeat with the same arguments after `.wouldBlock`.
    public func userauthKeyboardInteractive(user: String,
                                            answer: @escaping (InteractiveQuestions) -> [String]?) throws(SSH2Error) -> SSHStep<Void> {
        // libssh2's callback is a plain C function: it finds this session through the abstract pointer and the
        // answerer here, for the length of the call.
        interactiveAnswerer = answer
        defer { interactiveAnswerer = nil }
        let rc = user.withCString { userPointer in
            libssh2_userauth_keyboard_interactive_ex(raw, userPointer, UInt32(strlen(userPointer)), keyboardInteractiveCallback)
        }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw lastError(rc, operation: "keyboard-interactive authentication as \(user)") }
        return .done(())
    }

    /// Public-key authentication where something else holds the private key (an ssh-agent): `publicKeyBlob` is the
    /// key in SSH wire form (string algorithm, then the key's fields), and `sign` is called, on the calling thread
    /// and inside the libssh2 call, with the data the server wants signed. It returns the bare signature (the
    /// "signature blob" without its leading algorithm string: libssh2 1.10 writes the algorithm name itself, see
    /// `_libssh2_userauth_publickey` in src/userauth.c), or nil when it cannot sign. Repeat with the same arguments
    /// after `.wouldBlock`.
    public func userauthPublicKey(user: String, publicKeyBlob: [UInt8],
                                  sign: @escaping ([UInt8]) -> [UInt8]?) throws(SSH2Error) -> SSHStep<Void> {
        // libssh2 hands the callback the `abstract` passed here: this session's own, which leads back to `self`.
        publicKeySigner = sign
        defer { publicKeySigner = nil }
        let rc = user.withCString { userPointer in
            publicKeyBlob.withUnsafeBufferPointer { blob in
                libssh2_userauth_publickey(raw, userPointer, blob.baseAddress, blob.count, publicKeySignCallback,
                                           libssh2_session_abstract(raw))
            }
        }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        if rc != 0 { throw lastError(rc, operation: "public-key authentication as \(user) with an agent key") }
        return .done(())
    }

    fileprivate func signForPublicKey(_ data: [UInt8]) -> [UInt8]? {
        publicKeySigner?(data)
    }

    fileprivate func answerInteractive(_ questions: InteractiveQuestions) -> [String]? {
        interactiveAnswerer?(questions)
    }

    // MARK: - Channels

    /// Ask the server to connect to `host:port` (a `direct-tcpip` channel, as `ssh -L` does).
    /// libssh2 keeps one channel-open in flight per session: the caller must not start a second open (of any kind)
    /// until this one returned `.done` or threw, and must repeat the call with the same arguments after `.wouldBlock`.
    /// `receiveWindow`: what the server may send before we grant more; libssh2 tops the window up to this size as
    /// the channel is read (`SSHChannel.grantReceiveWindow` grants beyond it). libssh2's own `direct_tcpip` call
    /// always opens with its 2 MiB default, so the request (RFC 4254 7.2) is built here: string host, uint32 port,
    /// string originator address, uint32 originator port.
    public func openDirectTCPIP(host: String, port: Int, originHost: String, originPort: Int,
                                receiveWindow: Int = SSHChannel.defaultReceiveWindow) throws(SSH2Error) -> SSHStep<SSHChannel> {
        try checkUsable()
        var message = ChannelOpenMessage()
        message.appendString(host)
        message.appendUInt32(UInt32(truncatingIfNeeded: port))
        message.appendString(originHost)
        message.appendUInt32(UInt32(truncatingIfNeeded: originPort))
        let window = UInt32(clamping: receiveWindow)
        let type = "direct-tcpip"
        let channel = type.withCString { typePointer in
            message.bytes.withUnsafeBufferPointer { body in
                body.baseAddress!.withMemoryRebound(to: CChar.self, capacity: body.count) { bodyPointer in
                    tunnel_ssh2_channel_open_sized(raw, typePointer, UInt32(type.utf8.count), window, bodyPointer, UInt32(body.count))
                }
            }
        }
        if let channel { return .done(SSHChannel(raw: channel, session: self)) }
        let code = libssh2_session_last_errno(raw)
        if code == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        throw lastError(code, operation: "open a channel to \(host):\(port)")
    }

    /// Open a `session` channel (RFC 4254 6.1) and request nothing on it: the channel exists only so the owner has
    /// a channel through which to let libssh2 read the transport when no other channel is open. Same
    /// one-open-at-a-time rule as `openDirectTCPIP`.
    public func openIdleSession() throws(SSH2Error) -> SSHStep<SSHChannel> {
        try checkUsable()
        let type = "session"
        let channel = type.withCString { tunnel_ssh2_channel_open(raw, $0, UInt32(type.utf8.count), nil, 0) }
        if let channel { return .done(SSHChannel(raw: channel, session: self)) }
        let code = libssh2_session_last_errno(raw)
        if code == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        throw lastError(code, operation: "open a session channel")
    }

    /// Ask the server to connect to the Unix-domain socket at `path` (a `direct-streamlocal@openssh.com` channel, as
    /// `ssh -L 8080:/var/run/docker.sock` does; OpenSSH's PROTOCOL file, section 2.4). libssh2 has no call for this
    /// type, so the request is built here: string socket path, string reserved (""), uint32 reserved (0).
    /// Same one-open-at-a-time rule as `openDirectTCPIP`.
    public func openDirectStreamLocal(path: String) throws(SSH2Error) -> SSHStep<SSHChannel> {
        try checkUsable()
        var message: [UInt8] = []
        func appendString(_ bytes: [UInt8]) {
            let count = UInt32(bytes.count)
            message += [UInt8(count >> 24), UInt8((count >> 16) & 0xff), UInt8((count >> 8) & 0xff), UInt8(count & 0xff)]
            message += bytes
        }
        appendString(Array(path.utf8))
        appendString([])
        message += [0, 0, 0, 0]
        let type = "direct-streamlocal@openssh.com"
        let channel = type.withCString { typePointer in
            message.withUnsafeBufferPointer { body in
                body.baseAddress!.withMemoryRebound(to: CChar.self, capacity: body.count) { bodyPointer in
                    tunnel_ssh2_channel_open(raw, typePointer, UInt32(type.utf8.count), bodyPointer, UInt32(body.count))
                }
            }
        }
        if let channel { return .done(SSHChannel(raw: channel, session: self)) }
        let code = libssh2_session_last_errno(raw)
        if code == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        throw lastError(code, operation: "open a channel to \(path)")
    }

    // MARK: - Remote forwards

    /// Ask the server to listen on `host:port` and forward each connection to us (`tcpip-forward`, RFC 4254 7.1);
    /// port 0 lets the server choose (see `SSHRemoteListener.boundPort`). `host` is sent as is: "localhost" for
    /// loopback, "" for every address, or an address; the server's GatewayPorts decides what it binds.
    ///
    /// libssh2 keeps one such request in flight per session (one state for all of them) and takes the first
    /// SSH_MSG_REQUEST_SUCCESS/FAILURE it finds as the answer: the caller must not start a second request, nor any
    /// other global request with want-reply, until this one returned `.done` or threw, and must repeat the call with
    /// the same arguments after `.wouldBlock`. A refusal throws `.requestDenied` (the server's words, if it sent
    /// any, are in `lastServerMessage`). It uses none of the channel-open state, so it may run while a channel opens.
    /// `queueLimit`: forwarded connections libssh2 queues until `accept()` before it refuses more.
    public func requestRemoteListener(host: String, port: Int, queueLimit: Int = 256) throws(SSH2Error) -> SSHStep<SSHRemoteListener> {
        try checkUsable()
        var bound: Int32 = 0
        let listener = host.withCString { libssh2_channel_forward_listen_ex(raw, $0, Int32(port), &bound, Int32(queueLimit)) }
        if let listener { return .done(SSHRemoteListener(raw: listener, session: self, boundPort: Int(bound))) }
        let code = libssh2_session_last_errno(raw)
        if code == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        throw lastError(code, operation: "ask the server to listen on \(host.isEmpty ? "*" : host):\(port)")
    }

    // MARK: - Keepalive, teardown

    /// Politely end the session (SSH_MSG_DISCONNECT). Repeat after `.wouldBlock`.
    public func disconnect(reason: String) -> SSHStep<Void> {
        if isInvalidated { return .done(()) }
        let rc = reason.withCString { tunnel_ssh2_disconnect(raw, $0) }
        if rc == LIBSSH2_ERROR_EAGAIN { return .wouldBlock }
        return .done(())
    }

    /// Mark the session dead (its transport is gone). Every later channel call throws instead of touching libssh2
    /// state that refers to a connection that no longer exists.
    public func invalidate() {
        isInvalidated = true
        transportEnded = true
    }

    // MARK: - Helpers

    func checkUsable() throws(SSH2Error) {
        if isInvalidated {
            throw SSH2Error(code: LIBSSH2_ERROR_SOCKET_DISCONNECT, message: "the session has ended", operation: "use the SSH session")
        }
    }

    /// libssh2's own error text for `code`, kept verbatim so users see what the library said.
    func lastError(_ code: Int32, operation: String) -> SSH2Error {
        var messagePointer: UnsafeMutablePointer<CChar>? = nil
        var length: Int32 = 0
        let lastCode = libssh2_session_last_error(raw, &messagePointer, &length, 0)
        let message = messagePointer.map { String(cString: $0) } ?? ""
        // The failing call's own code is authoritative; libssh2's last error may be older when they differ.
        let effective = code != 0 ? code : lastCode
        return SSH2Error(code: effective, message: lastCode == effective ? message : "", operation: operation)
    }

    fileprivate func serverSentDebug(_ message: String) {
        lastServerMessage = message
        serverMessageCount += 1
    }

    // Called from the C callbacks.
    fileprivate func receiveFromTransport(socket: libssh2_socket_t, into buffer: UnsafeMutableRawPointer, length: Int, flags: Int32) -> Int {
        if Int32(socket) != placeholderFD {
            // Traffic on any other descriptor (libssh2 1.10 routes ssh-agent traffic through these callbacks) is real I/O.
            let n = recv(Int32(socket), buffer, length, flags)
            return n >= 0 ? n : -Int(errno)
        }
        if transportEnded { return 0 }
        guard let count = transport.receive(into: UnsafeMutableRawBufferPointer(start: buffer, count: length)) else {
            return -Int(EAGAIN)
        }
        return count
    }

    fileprivate func sendToTransport(socket: libssh2_socket_t, bytes: UnsafeRawPointer, length: Int, flags: Int32) -> Int {
        if Int32(socket) != placeholderFD {
            let n = send(Int32(socket), bytes, length, flags | Int32(MSG_NOSIGNAL))
            return n >= 0 ? n : -Int(errno)
        }
        if !transportEnded { transport.send(UnsafeRawBufferPointer(start: bytes, count: length)) }
        return length
    }
}

/// C function pointers cannot capture context; the session is found again through libssh2's `abstract` pointer.
private let sshReceiveCallback: tunnel_ssh2_recv_fn = { socket, buffer, length, flags, abstract in
    guard let buffer, let owner = abstract?.pointee else { return -Int(EINVAL) }
    let session = Unmanaged<SSHSession>.fromOpaque(owner).takeUnretainedValue()
    return session.receiveFromTransport(socket: socket, into: buffer, length: length, flags: flags)
}

private let sshSendCallback: tunnel_ssh2_send_fn = { socket, buffer, length, flags, abstract in
    guard let buffer, let owner = abstract?.pointee else { return -Int(EINVAL) }
    let session = Unmanaged<SSHSession>.fromOpaque(owner).takeUnretainedValue()
    return session.sendToTransport(socket: socket, bytes: buffer, length: length, flags: flags)
}

private let sshDebugCallback: tunnel_ssh2_debug_fn = { _, _, message, length, _, _, abstract in
    guard let message, length > 0, let owner = abstract?.pointee else { return }
    let session = Unmanaged<SSHSession>.fromOpaque(owner).takeUnretainedValue()
    let bytes = UnsafeRawBufferPointer(start: message, count: Int(length))
    // Bounded, and only printable: the text ends up in a log line.
    var text = ""
    for scalar in String(decoding: bytes.prefix(512), as: UTF8.self).unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7f {
        text.unicodeScalars.append(scalar)
    }
    session.serverSentDebug(text)
}

/// libssh2 frees each response's text with its allocator (malloc/free: the session is made with the defaults),
/// so answers are copied with strdup-like malloc here.
private let keyboardInteractiveCallback: @convention(c) (UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, Int32, Int32,
                                                          UnsafePointer<LIBSSH2_USERAUTH_KBDINT_PROMPT>?,
                                                          UnsafeMutablePointer<LIBSSH2_USERAUTH_KBDINT_RESPONSE>?,
                                                          UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Void = {
    name, nameLength, instruction, instructionLength, count, prompts, responses, abstract in
    guard let owner = abstract?.pointee, let responses, count >= 0 else { return }
    let session = Unmanaged<SSHSession>.fromOpaque(owner).takeUnretainedValue()
    func text(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }
    var asked: [(text: String, echo: Bool)] = []
    for index in 0..<Int(count) {
        guard let prompt = prompts?[index] else { break }
        asked.append((text(prompt.text.map { UnsafePointer($0) }, Int(prompt.length)), prompt.echo != 0))
    }
    let answers = session.answerInteractive(SSHSession.InteractiveQuestions(
        name: text(name, Int(nameLength)), instruction: text(instruction, Int(instructionLength)), prompts: asked)) ?? []
    for index in 0..<Int(count) {
        let answer = Array((index < answers.count ? answers[index] : "").utf8)
        let copy = malloc(max(answer.count, 1))!.assumingMemoryBound(to: CChar.self)
        answer.withUnsafeBytes { bytes in
            if !bytes.isEmpty { memcpy(copy, bytes.baseAddress!, bytes.count) }
        }
        responses[index].text = copy
        responses[index].length = UInt32(answer.count)
    }
}

/// libssh2 frees the signature with its allocator (free: the session is made with the defaults), so it is copied
/// into malloc'd memory here.
private let publicKeySignCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?,
                                                   UnsafeMutablePointer<Int>?, UnsafePointer<UInt8>?, Int,
                                                   UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32 = {
    _, signature, signatureLength, data, dataLength, abstract in
    guard let owner = abstract?.pointee, let signature, let signatureLength, let data else { return -1 }
    let session = Unmanaged<SSHSession>.fromOpaque(owner).takeUnretainedValue()
    guard let signed = session.signForPublicKey(Array(UnsafeBufferPointer(start: data, count: dataLength))),
          !signed.isEmpty, let copy = malloc(signed.count) else { return -1 }
    signed.withUnsafeBytes { _ = memcpy(copy, $0.baseAddress!, $0.count) }
    signature.pointee = copy.assumingMemoryBound(to: UInt8.self)
    signatureLength.pointee = signed.count
    return 0
}

func withOptionalCString<R>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// A kind of algorithm the handshake negotiates, as set with `SSHSession.prefer(_:for:)`; ciphers and MACs for
/// both directions at once.
public enum SSHAlgorithmKind: Sendable, CaseIterable {
    case keyExchange, hostKey, cipher, mac

    /// libssh2's `LIBSSH2_METHOD_*`, the first of them the one to ask which are supported.
    var methodTypes: [Int32] {
        switch self {
        case .keyExchange: return [LIBSSH2_METHOD_KEX]
        case .hostKey: return [LIBSSH2_METHOD_HOSTKEY]
        case .cipher: return [LIBSSH2_METHOD_CRYPT_CS, LIBSSH2_METHOD_CRYPT_SC]
        case .mac: return [LIBSSH2_METHOD_MAC_CS, LIBSSH2_METHOD_MAC_SC]
        }
    }
}

/// What one handshake negotiated, as libssh2 names the algorithms ("" where libssh2 reports none).
public struct SSHNegotiatedMethods: Sendable, Equatable {
    public var keyExchange: String
    public var hostKey: String
    public var cipherClientToServer: String
    public var cipherServerToClient: String
    public var macClientToServer: String
    public var macServerToClient: String
    public var compressionClientToServer: String
    public var compressionServerToClient: String
}

/// The type-specific part of an SSH_MSG_CHANNEL_OPEN (RFC 4254 5.1), in SSH's wire encoding (RFC 4251 5).
struct ChannelOpenMessage {
    private(set) var bytes: [UInt8] = []

    mutating func appendUInt32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
    }

    mutating func appendString(_ text: String) {
        let utf8 = Array(text.utf8)
        appendUInt32(UInt32(utf8.count))
        bytes += utf8
    }
}
