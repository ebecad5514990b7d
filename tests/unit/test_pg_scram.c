/* Lease passwords and their SCRAM verifiers: each pair handed out once,
 * each verifier the password's (recomputed here from its salt), whether
 * it came from the stock the thread pool filled or was made on the spot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <uv.h>

#include "pg_scram.h"

/* The verifier's StoredKey, recomputed from the password and its salt. */
static void assert_pair(const pg_cred_t *c)
{
    assert_int_equal(strlen(c->password), 32);
    char salt64[64], stored64[64];
    int iter;
    assert_int_equal(
        sscanf(c->verifier, "SCRAM-SHA-256$%d:%63[^$]$%63[^:]:", &iter, salt64, stored64), 3);
    assert_int_equal(iter, PG_SCRAM_ITERATIONS);
    unsigned char salt[48], salted[32], client_key[32], stored[32], want[48];
    int slen = EVP_DecodeBlock(salt, (const unsigned char *)salt64, (int)strlen(salt64));
    assert_true(slen >= 16);
    unsigned int n = 32;
    assert_int_equal(PKCS5_PBKDF2_HMAC(c->password, 32, salt, 16, iter, EVP_sha256(), 32, salted),
                     1);
    assert_non_null(
        HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, client_key, &n));
    assert_int_equal(EVP_Digest(client_key, 32, stored, &n, EVP_sha256(), NULL), 1);
    assert_true(EVP_DecodeBlock(want, (const unsigned char *)stored64, (int)strlen(stored64)) >=
                32);
    assert_memory_equal(stored, want, 32);
}

static void pairs_match_and_are_never_handed_out_twice(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    enum { N = 40 };
    static pg_cred_t got[N];
    /* The first is made on the spot (the stock is empty) and starts a fill. */
    assert_int_equal(pg_cred_take(&loop, &got[0]), 0);
    for (int i = 1; i < N; i++) {
        if (i % 7 == 0) /* let the thread pool's fills land now and then */
            uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(pg_cred_take(&loop, &got[i]), 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the last fill, before the loop closes */
    for (int i = 0; i < N; i++) {
        assert_pair(&got[i]);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(got[i].password, got[k].password);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pairs_match_and_are_never_handed_out_twice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
