#include "pg_scram.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

static int hmac(const unsigned char *key, const char *msg, unsigned char out[32])
{
    unsigned int n = 32;
    return HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, strlen(msg), out, &n) ? 0 : -1;
}

int pg_scram_verifier(const char *password, char *out, size_t len)
{
    unsigned char salt[16], salted[32], client_key[32], stored_key[32], server_key[32];
    unsigned int n = 32;
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof salt, PG_SCRAM_ITERATIONS,
                          EVP_sha256(), sizeof salted, salted) != 1 ||
        hmac(salted, "Client Key", client_key) < 0 ||
        EVP_Digest(client_key, sizeof client_key, stored_key, &n, EVP_sha256(), NULL) != 1 ||
        hmac(salted, "Server Key", server_key) < 0)
        return -1;
    unsigned char b64_salt[32], b64_stored[48], b64_server[48];
    EVP_EncodeBlock(b64_salt, salt, sizeof salt);
    EVP_EncodeBlock(b64_stored, stored_key, sizeof stored_key);
    EVP_EncodeBlock(b64_server, server_key, sizeof server_key);
    int w = snprintf(out, len, "SCRAM-SHA-256$%d:%s$%s:%s", PG_SCRAM_ITERATIONS, b64_salt,
                     b64_stored, b64_server);
    return (w < 0 || (size_t)w >= len) ? -1 : 0;
}

/* ---- the stock ---------------------------------------------------------- */

#define STOCK 16

static int make(pg_cred_t *c)
{
    return util_random_password(c->password, sizeof c->password - 1) < 0 ||
                   pg_scram_verifier(c->password, c->verifier, sizeof c->verifier) < 0
               ? -1
               : 0;
}

/* ready[] and n belong to the loop thread; batch[] and made to the work
 * while filling is set, to the loop again in its after-callback. */
static struct {
    pg_cred_t ready[STOCK];
    int n;
    bool filling;
    uv_work_t req;
    pg_cred_t batch[STOCK];
    int made;
} stock;

static void fill(uv_work_t *req)
{
    (void)req;
    stock.made = 0;
    for (int i = 0; i < STOCK; i++)
        if (make(&stock.batch[stock.made]) == 0)
            stock.made++;
}

static void filled(uv_work_t *req, int status)
{
    (void)req;
    for (int i = 0; status == 0 && i < stock.made && stock.n < STOCK; i++)
        stock.ready[stock.n++] = stock.batch[i];
    OPENSSL_cleanse(stock.batch, sizeof stock.batch);
    stock.filling = false;
}

int pg_cred_take(uv_loop_t *loop, pg_cred_t *out)
{
    int rc = 0;
    if (stock.n > 0) {
        *out = stock.ready[--stock.n];
        OPENSSL_cleanse(&stock.ready[stock.n], sizeof stock.ready[stock.n]);
    } else {
        rc = make(out);
    }
    if (!stock.filling && stock.n <= STOCK / 2 &&
        uv_queue_work(loop, &stock.req, fill, filled) == 0)
        stock.filling = true;
    return rc;
}
