/* OpenSSL's libcrypto, for SHA-256 only: models travel with their hash, and libcrypto uses the CPU's SHA
 * instructions where there are some. */
#ifndef NAS_CCRYPTO_SHIM_H
#define NAS_CCRYPTO_SHIM_H
#include <openssl/evp.h>

/* The 32-byte SHA-256 digest of `count` bytes; 1 on success. */
static inline int nas_sha256(const void *data, size_t count, unsigned char *digest) {
    unsigned int length = 0;
    return EVP_Digest(data, count, digest, &length, EVP_sha256(), NULL);
}
#endif
