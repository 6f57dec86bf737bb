/* OpenSSL's libssl, for HTTP/2 over TLS in the fleet's transport (Sources/HTTP2/TLS*.swift). Macros and the few
 * calls Swift cannot import as they are get typed `nas_tls_` shims. */
#ifndef NAS_COPENSSL_SHIM_H
#define NAS_COPENSSL_SHIM_H
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* TLS 1.2 at least: HTTP/2 forbids anything older (RFC 9113, 9.2). */
static inline int nas_tls_set_min_tls12(SSL_CTX *context) {
    return (int)SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
}

/* Partial writes, and a write buffer that may move between retries of the same bytes. */
static inline void nas_tls_set_modes(SSL *ssl) {
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* SNI: the name the client asks the server for. */
static inline int nas_tls_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/* The server's ALPN choice: "h2" when the client offers it, else a fatal no_application_protocol alert. */
static int nas_tls_select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                             unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char h2[] = {2, 'h', '2'};
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, h2, sizeof h2, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static inline void nas_tls_server_require_h2(SSL_CTX *context) {
    SSL_CTX_set_alpn_select_cb(context, nas_tls_select_h2, NULL);
}

/* The client's ALPN offer: "h2" only. 0 on success (OpenSSL's own convention for this call). */
static inline int nas_tls_client_offer_h2(SSL_CTX *context) {
    static const unsigned char h2[] = {2, 'h', '2'};
    return SSL_CTX_set_alpn_protos(context, h2, sizeof h2);
}

/* An EOF without close_notify ends the connection like a close_notify: the fleet's peers close sockets when done,
 * and HTTP/2 frames its own ends (RFC 9113, 9.2.1 leaves truncation detection to HTTP). */
static inline void nas_tls_ignore_unexpected_eof(SSL_CTX *context) {
    SSL_CTX_set_options(context, SSL_OP_IGNORE_UNEXPECTED_EOF);
}
#endif
