#ifndef TUNNEL_CLIBSSH2_SHIM_H
#define TUNNEL_CLIBSSH2_SHIM_H

// libssh2 exposes much of its API as macros, which Swift cannot import, and its
// callback setter takes `void *`. These static inline functions give Swift typed entry points.

#include <libssh2.h>
#include <sys/types.h>

typedef ssize_t (*tunnel_ssh2_recv_fn)(libssh2_socket_t socket, void *buffer, size_t length, int flags, void **abstract);
typedef ssize_t (*tunnel_ssh2_send_fn)(libssh2_socket_t socket, const void *buffer, size_t length, int flags, void **abstract);

static inline LIBSSH2_SESSION *tunnel_ssh2_session_init(void *abstract) {
    return libssh2_session_init_ex(NULL, NULL, NULL, abstract);
}

static inline void tunnel_ssh2_set_transport(LIBSSH2_SESSION *session, tunnel_ssh2_recv_fn recv_fn, tunnel_ssh2_send_fn send_fn) {
    // libssh2 1.10 declares the setter as taking `void *`; the pointer is cast back to the typed function inside.
    libssh2_session_callback_set(session, LIBSSH2_CALLBACK_RECV, (void *)recv_fn);
    libssh2_session_callback_set(session, LIBSSH2_CALLBACK_SEND, (void *)send_fn);
}

typedef void (*tunnel_ssh2_debug_fn)(LIBSSH2_SESSION *session, int always_display, const char *message, int message_len,
                                     const char *language, int language_len, void **abstract);

// SSH_MSG_DEBUG from the server (RFC 4253 11.3): the only words a server gives when it refuses a global request
// (sshd sends "Server has disabled port forwarding." before its SSH_MSG_REQUEST_FAILURE, which carries no text).
static inline void tunnel_ssh2_set_debug_callback(LIBSSH2_SESSION *session, tunnel_ssh2_debug_fn debug_fn) {
    libssh2_session_callback_set(session, LIBSSH2_CALLBACK_DEBUG, (void *)debug_fn);
}

static inline int tunnel_ssh2_disconnect(LIBSSH2_SESSION *session, const char *description) {
    return libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, description, "");
}

static inline LIBSSH2_CHANNEL *tunnel_ssh2_direct_tcpip(LIBSSH2_SESSION *session, const char *host, int port,
                                                        const char *shost, int sport) {
    return libssh2_channel_direct_tcpip_ex(session, host, port, shost, sport);
}

// A channel of any type with libssh2's default window and packet sizes; `message` is the type-specific part of
// SSH_MSG_CHANNEL_OPEN (RFC 4254 5.1), which libssh2 copies on the first call.
static inline LIBSSH2_CHANNEL *tunnel_ssh2_channel_open(LIBSSH2_SESSION *session, const char *type, unsigned int type_len,
                                                        const char *message, unsigned int message_len) {
    return libssh2_channel_open_ex(session, type, type_len, LIBSSH2_CHANNEL_WINDOW_DEFAULT,
                                   LIBSSH2_CHANNEL_PACKET_DEFAULT, message, message_len);
}

// The same with the receive window the channel opens with (what the server may send before we grant more; libssh2
// tops the window up to this size as the channel is read) and the largest packet we accept.
static inline LIBSSH2_CHANNEL *tunnel_ssh2_channel_open_sized(LIBSSH2_SESSION *session, const char *type,
                                                              unsigned int type_len, unsigned int window_size,
                                                              const char *message, unsigned int message_len) {
    return libssh2_channel_open_ex(session, type, type_len, window_size, LIBSSH2_CHANNEL_PACKET_DEFAULT, message,
                                   message_len);
}

static inline unsigned int tunnel_ssh2_channel_window_default(void) { return LIBSSH2_CHANNEL_WINDOW_DEFAULT; }

static inline ssize_t tunnel_ssh2_channel_read(LIBSSH2_CHANNEL *channel, char *buf, size_t buflen) {
    return libssh2_channel_read_ex(channel, 0, buf, buflen);
}

static inline ssize_t tunnel_ssh2_channel_write(LIBSSH2_CHANNEL *channel, const char *buf, size_t buflen) {
    return libssh2_channel_write_ex(channel, 0, buf, buflen);
}

static inline int tunnel_ssh2_userauth_publickey_fromfile(LIBSSH2_SESSION *session, const char *username,
                                                          unsigned int username_len, const char *publickey,
                                                          const char *privatekey, const char *passphrase) {
    return libssh2_userauth_publickey_fromfile_ex(session, username, username_len, publickey, privatekey, passphrase);
}

static inline int tunnel_ssh2_version_num(void) { return LIBSSH2_VERSION_NUM; }

#endif
