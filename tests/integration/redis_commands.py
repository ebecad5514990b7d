#!/usr/bin/env python3
"""Every command a Redis lease may run, against what a release does about it.

Reads `COMMAND` (redis-cli --json, as the lease user) on stdin; prints one
line per command the lease user may run that changes something and is not
accounted for below, and exits 1 if there is any. A new Redis version that
adds such a command fails here until someone decides what the reset does
about it (engine/rd_slots.c) or denies it (runtime/rd_server.c).
"""
import json
import sys

# Denied to leases beyond @admin (runtime/rd_server.c): the test runs them.
DENIED = {"migrate", "script|debug"}

# What a release clears, by what. Commands with keys and the write flag
# change keys, which FLUSHALL clears; these are the rest.
CLEARED = {
    # keys in any database, or all of them: FLUSHALL
    "flushall": "keys", "flushdb": "keys", "swapdb": "keys",
    # the script cache and its Lua VM: SCRIPT FLUSH
    "eval": "scripts", "evalsha": "scripts", "script|load": "scripts", "script|flush": "scripts",
    # function libraries: FUNCTION FLUSH
    "function|load": "functions", "function|restore": "functions",
    "function|delete": "functions", "function|flush": "functions", "fcall": "functions",
    # ends with the connection: CLIENT KILL USER default
    "client|caching": "connection", "client|reply": "connection",
    "client|setname": "connection", "client|tracking": "connection",
    "hello": "connection", "reset": "connection", "select": "connection", "auth": "connection",
    "readonly": "connection", "readwrite": "connection", "asking": "connection",
    "multi": "connection", "exec": "connection", "discard": "connection",
    "watch": "connection", "unwatch": "connection",
    "subscribe": "connection", "psubscribe": "connection", "ssubscribe": "connection",
    "unsubscribe": "connection", "punsubscribe": "connection", "sunsubscribe": "connection",
    # statistics only: CONFIG RESETSTAT
    "publish": "stats", "spublish": "stats", "memory|purge": "stats",
    # interrupt a running script or function; leave nothing
    "script|kill": "nothing", "function|kill": "nothing", "wait": "nothing",
    # run cached scripts or loaded functions: what they may write has keys
    "eval_ro": "scripts", "evalsha_ro": "scripts", "fcall_ro": "functions",
}

# Change nothing: they read server or connection state.
READS = {
    "quit", "ping", "echo", "info", "time", "lastsave", "lolwut",
    "client|getredir", "client|help", "client|trackinginfo", "client|info", "client|id",
    "client|getname", "function|list", "function|dump", "function|help", "function|stats",
    "script|exists", "script|help", "acl|cat", "acl|genpass", "acl|whoami", "acl|help",
    "config|help", "latency|help", "module|help", "object|help", "slowlog|help",
    "memory|doctor", "memory|help", "memory|malloc-stats", "memory|stats", "memory|usage",
    "xinfo|help", "xgroup|help",
}
READ_GROUPS = ("command|", "pubsub|", "cluster|")  # queries (cluster: disabled here)


def walk(entries):
    for c in entries:
        subs = c[9] if len(c) > 9 and c[9] else []
        if subs:
            yield from walk(subs)
        else:
            yield c


def main():
    info = json.load(sys.stdin)
    missing = []
    for c in walk(info):
        name, flags, cats = c[0], c[2], c[6]
        if "@admin" in cats or name in DENIED:
            continue
        has_keys = c[3] > 0 or "movablekeys" in flags
        if name in CLEARED or (has_keys and "write" in flags):
            continue
        if "readonly" in flags and "@scripting" not in cats:
            continue  # reads keys
        if name in READS or name.startswith(READ_GROUPS):
            continue
        missing.append(f"{name} (flags {','.join(flags)}; {','.join(cats)})")
    for m in missing:
        print(m)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
