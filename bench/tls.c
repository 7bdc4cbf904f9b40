#include "bench/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_openssl_error(const char *what, const char *arg)
{
    char reason[256] = "unknown error";
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    fprintf(stderr, "pyexec-bench: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", reason);
    ERR_clear_error();
}

SSL_CTX *tls_context_new(const struct options *opts)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        print_openssl_error("cannot create a TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* One request after another on a connection, never HTTP/2. */
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    if (opts->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (opts->cacert) {
        if (SSL_CTX_load_verify_locations(ctx, opts->cacert, NULL) != 1) {
            print_openssl_error("cannot load --cacert", opts->cacert);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        print_openssl_error("cannot load the system's CA certificates", NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL *tls_new_ssl(SSL_CTX *ctx, const struct options *opts)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    unsigned char addr[sizeof(struct in6_addr)];
    int literal =
        inet_pton(AF_INET, opts->host, addr) == 1 || inet_pton(AF_INET6, opts->host, addr) == 1;
    /* SNI carries names only (RFC 6066); an address is checked as an address. */
    if (!literal && SSL_set_tlsext_host_name(ssl, opts->host) != 1)
        goto fail;
    if (!opts->insecure) {
        int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), opts->host)
                         : SSL_set1_host(ssl, opts->host);
        if (ok != 1)
            goto fail;
    }
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

int tls_conn_start(struct tls_conn *t, SSL_CTX *ctx, const struct options *opts,
                   SSL_SESSION *session)
{
    memset(t, 0, sizeof(*t));
    t->ssl = tls_new_ssl(ctx, opts);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        memset(t, 0, sizeof(*t));
        ERR_clear_error();
        return -ENOMEM;
    }
    /* Empty means "more to come", not end of stream: libuv reports the end. */
    BIO_set_mem_eof_return(t->rbio, -1);
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (session)
        SSL_set_session(t->ssl, session);
    return 0;
}

void tls_conn_free(struct tls_conn *t, SSL_SESSION **keep)
{
    if (!t->ssl)
        return;
    if (keep && t->done) {
        /* With TLS 1.3 the ticket comes after the handshake, with the first
         * answer: by now the session holds it. */
        SSL_SESSION *s = SSL_get1_session(t->ssl);
        if (s && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(*keep);
            *keep = s;
            /* SSL_free marks the session of a connection that was not shut
             * down unresumable; HTTP already knew where the stream ended
             * (a failed one was marked by OpenSSL when it failed). */
            SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        } else {
            SSL_SESSION_free(s);
        }
    }
    SSL_free(t->ssl); /* frees both BIOs */
    memset(t, 0, sizeof(*t));
}

int tls_feed(struct tls_conn *t, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > (1U << 30) ? 1 << 30 : (int)len;
        int n = BIO_write(t->rbio, data, chunk);
        if (n <= 0)
            return -ENOMEM;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_handshake(struct tls_conn *t)
{
    ERR_clear_error(); /* SSL_get_error reads the thread's whole queue */
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = 1;
        return 1;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return -EPROTO;
}

ssize_t tls_read(struct tls_conn *t, char *buf, size_t size)
{
    ERR_clear_error();
    int n = SSL_read(t->ssl, buf, size > (1U << 30) ? 1 << 30 : (int)size);
    if (n > 0)
        return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
        return -EPIPE;
    return -EPROTO;
}

int tls_write(struct tls_conn *t, const void *data, size_t len)
{
    ERR_clear_error();
    size_t written = 0;
    /* A memory BIO takes everything: one call, unless the length is huge. */
    if (len > 0 && SSL_write_ex(t->ssl, data, len, &written) != 1)
        return -EPROTO;
    return written == len ? 0 : -EPROTO;
}

size_t tls_pending(struct tls_conn *t)
{
    return BIO_ctrl_pending(t->wbio);
}

int tls_take(struct tls_conn *t, char *buf, size_t len)
{
    size_t got = 0;
    return BIO_read_ex(t->wbio, buf, len, &got) == 1 && got == len ? 0 : -EPROTO;
}

void tls_failure(struct tls_conn *t, char *why, size_t size, int *verify)
{
    long result = t->ssl ? SSL_get_verify_result(t->ssl) : X509_V_OK;
    /* Under --insecure a bad certificate is noted but never the reason. */
    *verify = result != X509_V_OK && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER);
    if (*verify) {
        snprintf(why, size, "%s", X509_verify_cert_error_string(result));
    } else {
        unsigned long e = ERR_peek_last_error();
        if (e)
            ERR_error_string_n(e, why, size);
        else
            snprintf(why, size, "handshake failed");
    }
    ERR_clear_error();
}
