/* A real hiredis client for the integration suite: connect to a lease,
 * authenticate, select its database, then run one command given on the
 * command line and print the reply (or the error) on one line.
 *
 * usage: redis_probe HOST PORT PASSWORD DB CMD [ARGS…]
 * exit: 0 reply printed, 1 error reply or failed auth, 2 usage, 3 no connection */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

static int print_reply(const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        printf("%s\n", r->str);
        return 0;
    case REDIS_REPLY_INTEGER:
        printf("%lld\n", r->integer);
        return 0;
    case REDIS_REPLY_NIL:
        printf("(nil)\n");
        return 0;
    case REDIS_REPLY_ERROR:
        printf("%s\n", r->str);
        return 1;
    default:
        printf("(%zu elements)\n", r->elements);
        return 0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: redis_probe HOST PORT PASSWORD DB CMD [ARGS...]\n");
        return 2;
    }
    redisContext *c = redisConnect(argv[1], atoi(argv[2]));
    if (!c || c->err) {
        printf("connect: %s\n", c ? c->errstr : "out of memory");
        redisFree(c);
        return 3;
    }
    redisReply *r = redisCommand(c, "AUTH default %s", argv[3]);
    int rc = r ? (r->type == REDIS_REPLY_ERROR) : 1;
    if (rc) {
        printf("%s\n", r ? r->str : c->errstr);
        freeReplyObject(r);
        redisFree(c);
        return 1;
    }
    freeReplyObject(r);
    r = redisCommand(c, "SELECT %s", argv[4]);
    freeReplyObject(r);
    r = redisCommandArgv(c, argc - 5, (const char **)argv + 5, NULL);
    rc = r ? print_reply(r) : 3;
    if (!r)
        printf("%s\n", c->errstr);
    freeReplyObject(r);
    redisFree(c);
    return rc;
}
