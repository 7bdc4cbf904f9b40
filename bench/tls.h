/* pyexec-bench's TLS (OpenSSL): one client context per run, and one TLS
 * session per connection driven through a pair of memory BIOs, so that libuv
 * owns the socket and OpenSSL only transforms bytes:
 *
 *     uv read ──▶ tls_feed() ──▶ rbio ──▶ SSL ──▶ tls_read() ──▶ http_parser
 *     request ──▶ tls_write() ──▶ SSL ──▶ wbio ──▶ tls_take() ──▶ uv_write
 *
 * Called by the load generator (per connection) and by the /metrics scrape
 * (a blocking socket, tls_new_ssl() only). Runs in pyexec-bench only. */
#ifndef PYEXEC_BENCH_TLS_H
#define PYEXEC_BENCH_TLS_H

#include "bench/options.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

/* The run's context: the system's CA store (or --cacert), peer verification
 * unless --insecure. Returns NULL after writing one line to stderr. */
SSL_CTX *tls_context_new(const struct options *opts);

/* A client SSL for host: SNI (names only, never an address literal) and the
 * host-name or IP check of the certificate, unless --insecure. NULL on failure. */
SSL *tls_new_ssl(SSL_CTX *ctx, const struct options *opts);

/* One connection's TLS state. */
struct tls_conn {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the network, owned by ssl */
    BIO *wbio; /* ciphertext for the network, owned by ssl */
    int done;  /* handshake complete */
};

/* Start a client session; resume `session` when given (not taken over).
 * Returns 0 or -ENOMEM. */
int tls_conn_start(struct tls_conn *t, SSL_CTX *ctx, const struct options *opts,
                   SSL_SESSION *session);

/* Free the session. *keep (when not NULL) receives a resumable session for the
 * next connection, replacing (and freeing) the one there. */
void tls_conn_free(struct tls_conn *t, SSL_SESSION **keep);

/* Ciphertext received: hand it to OpenSSL. Returns 0 or -ENOMEM. */
int tls_feed(struct tls_conn *t, const char *data, size_t len);

/* Advance the handshake. 1 done, 0 needs more bytes, -EPROTO failed (see
 * tls_failure()). */
int tls_handshake(struct tls_conn *t);

/* Plaintext out: > 0 bytes, 0 needs more bytes, -EPIPE the peer closed the
 * session (close_notify), -EPROTO failed. */
ssize_t tls_read(struct tls_conn *t, char *buf, size_t size);

/* Plaintext in (all of it, into wbio). Returns 0 or -EPROTO. */
int tls_write(struct tls_conn *t, const void *data, size_t len);

/* Ciphertext waiting for the network: how much, then move exactly len of it
 * into buf (0 or -EPROTO). */
size_t tls_pending(struct tls_conn *t);
int tls_take(struct tls_conn *t, char *buf, size_t len);

/* Why the last handshake failed: the certificate check's reason (and 1 in
 * *verify) when verification refused the peer, else OpenSSL's error. Writes
 * at most size bytes. */
void tls_failure(struct tls_conn *t, char *why, size_t size, int *verify);

#endif
