/* SCRAM-SHA-256 verifiers computed here, so the server stores them as
 * they are instead of hashing each new password itself (4096 rounds, most
 * of the cost of preparing and recycling a database, measured). Lease
 * passwords are 32 random alphanumerics (190 bits): a low iteration count
 * costs an attacker nothing they could use, and makes every test's
 * connection cheaper too. Not below 1000: Go's lib/pq rejects a count of
 * fewer than four digits ("invalid SCRAM-SHA-256 iteration count"). */
#ifndef DBL_PG_SCRAM_H
#define DBL_PG_SCRAM_H

#include <stddef.h>
#include <uv.h>

#define PG_SCRAM_ITERATIONS 1000

/* "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" into out. 0 or -1. */
int pg_scram_verifier(const char *password, char *out, size_t len);

/* A new lease password and its verifier. */
typedef struct pg_cred {
    char password[33];
    char verifier[160];
} pg_cred_t;

/* A fresh pair from a stock made on libuv's thread pool (a verifier is a
 * quarter of a millisecond of PBKDF2, not for the loop thread; every
 * release and every new database takes one), refilled in the background
 * when half empty; made here, on the caller's thread, when the stock is
 * empty. Each pair is handed out once. 0 or -1. */
int pg_cred_take(uv_loop_t *loop, pg_cred_t *out);

#endif
