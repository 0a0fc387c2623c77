#ifndef TUNNEL_CLIBCRYPTO_SHIM_H
#define TUNNEL_CLIBCRYPTO_SHIM_H

// OpenSSL's libcrypto: already loaded by libssh2 (its crypto backend on Debian), and its headers come with
// libssh2-1-dev's dependency libssl-dev. Only the digest, HMAC and memory-cleansing entry points are used
// (module Digests wraps them); everything else stays libssh2's business.

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#endif
