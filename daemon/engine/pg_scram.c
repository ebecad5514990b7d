#include "pg_scram.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

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
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof salt,
                          PG_SCRAM_ITERATIONS, EVP_sha256(), sizeof salted, salted) != 1 ||
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
