"""The storm's actors: each a loop that runs until the storm ends, careless
or hostile in its own way, checking what it can see on the way."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from storm_lib import (BOUNDED, DAEMON_LIVES, EMPTY_OWN, STATUS_FAST, Conn,
                       inq, outq, proc_alive, proc_id, psql, resp)

LEASE_WAIT_MS = 8000


def connect(storm, actor):
    """A new connection, named for its actor and round ("n1.7")."""
    with storm.lock:
        n = storm.rounds[actor] = storm.rounds.get(actor, 0) + 1
    try:
        return Conn(storm, f"{actor}.{n}")
    except OSError:
        storm.count("connect failed")
        storm.sleep(0.2)
        return None


# ---- the watcher ------------------------------------------------------------


def watcher(storm, _k):
    """Polls status (1 s to answer, connect included), the daemon's life and
    its memory; remembers every server it lists. Stops the storm when the
    daemon is dead or has not answered for 15 s: the rest would only pile up
    the same finding."""
    cap_kb = int(os.environ.get("DBLEASE_STORM_MAX_RSS_MB", "1536")) * 1024
    silent_since = None
    while not storm.stop.is_set() and time.monotonic() < storm.deadline:
        t = time.monotonic()
        if not proc_alive(storm.daemon_pid):
            storm.violate(DAEMON_LIVES, f"dbleased (pid {storm.daemon_pid.split(':')[0]}) is gone")
            storm.abandon.set()
            storm.stop.set()
            return
        rss = rss_kb(storm.daemon_pid.split(":")[0])
        if rss > cap_kb:
            storm.violate(BOUNDED, f"dbleased holds {rss // 1024} MiB; killed to save the machine")
            os.kill(int(storm.daemon_pid.split(":")[0]), signal.SIGKILL)
            storm.abandon.set()
            storm.stop.set()
            return
        reply = poll_status(storm)
        storm.count("status polls")
        if reply is None:
            silent_since = silent_since or t
            if time.monotonic() - silent_since > 15:
                print("storm: the daemon has not answered status for 15 s; stopping early", flush=True)
                storm.abandon.set()
                storm.stop.set()
                return
        else:
            silent_since = None
            remember_servers(storm, reply)
        storm.sleep(max(0, 0.25 - (time.monotonic() - t)))


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def poll_status(storm):
    t = time.monotonic()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1.0)
        s.connect(storm.sock)
        s.sendall(b'{"id":"watch","op":"status"}\n')
        buf = b""
        while b"\n" not in buf:
            left = 1.0 - (time.monotonic() - t)
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            data = s.recv(1 << 20)
            if not data:
                raise ConnectionError("closed")
            buf += data
        s.close()
        reply = json.loads(buf.split(b"\n", 1)[0])
        if reply.get("id") != "watch" or not reply.get("ok"):
            storm.violate(STATUS_FAST, f"status answered {buf[:120]!r}")
            return None
        return reply
    except (OSError, ValueError) as e:
        storm.violate(STATUS_FAST, f"status: {type(e).__name__} {e} after "
                      f"{int((time.monotonic() - t) * 1000)} ms")
        return None


def remember_servers(storm, status):
    pids = {i.get("pid") for i in status.get("instances", []) if i.get("pid")}
    for p in pids:
        pid_start = proc_id(p)
        if pid_start:
            with storm.lock:
                storm.servers.add(pid_start)


# ---- careful clients ---------------------------------------------------------


def normal(storm, k):
    """Lease, look inside (empty? then mark it ours), maybe renew, check the
    mark, release: the ledger gets the interval when the daemon confirms
    the lease was ours until the release."""
    rng = storm.rng("normal", k)
    while storm.running():
        c = connect(storm, f"n{k}")
        if not c:
            continue
        kind = "redis" if storm.redis and rng.random() < 0.3 else "postgres"
        lease = lease_of(c, c.wait(c.send("lease", LEASE_WAIT_MS / 1000, kind=kind,
                                          wait_ms=LEASE_WAIT_MS)))
        if lease:
            use_and_release(storm, c, rng, lease, c.who)
        c.finish()
        storm.count("normal rounds")


def lease_of(c, reply):
    if not reply:
        return None
    if not reply.get("ok"):
        c.storm.count("lease refused: " + str(reply.get("error", {}).get("code")))
        return None
    c.storm.count("leases")
    return reply["lease"]


def use_and_release(storm, c, rng, lease, tag):
    start = time.monotonic()
    look = look_pg if lease["kind"] == "postgres" else look_redis
    findings = look(storm, lease, tag)
    if findings == [] and rng.random() < 0.5:
        r = c.wait(c.send("renew", lease=lease["id"], ttl_s=rng.randint(60, 900)))
        if r and not r.get("ok"):
            findings.append(f"renew refused: {r}")
    end = time.monotonic()
    r = c.wait(c.send("release", lease=lease["id"]))
    # Only a lease the daemon confirms was live until its release counts: one
    # it ended (an event said so) may have been handed on already.
    if r and r.get("ok") and not c.lease_ended(lease["id"]):
        key = resource(lease)
        with storm.lock:
            storm.ledger.append((key, start, end, tag))
        for f in findings or []:
            storm.violate(EMPTY_OWN, f"{tag} on {key}: {f}")


def resource(lease):
    if lease["kind"] == "postgres":
        return f"pg {lease['host']}:{lease['port']}/{lease['dbname']}/{lease.get('schema', '')}"
    return f"redis {lease['host']}:{lease['port']}/{lease.get('db', 0)}"


def look_pg(storm, lease, tag):
    """[] when the lease was empty and stayed ours; what was wrong otherwise;
    None when the server could not be used (not a finding by itself)."""
    url = lease["url"]
    n = psql(url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
    if n is None:
        storm.count("psql failed")
        return None
    out = [] if n == "0" else [f"started with {n} relations"]
    if psql(url, f"CREATE TABLE storm_owner (w text); INSERT INTO storm_owner VALUES ('{tag}')") is None:
        storm.count("psql failed")
        return out
    w = psql(url, "SELECT string_agg(w, ',') FROM storm_owner")
    if w is not None and w != tag:
        out.append(f"held {w!r}, not {tag!r}")
    return out


def look_redis(storm, lease, tag):
    args = (lease["host"], lease["port"], lease["password"], lease.get("db", 0))
    r = resp(*args, ("DBSIZE",), ("SET", "storm_owner", tag))
    if r is None:
        storm.count("redis failed")
        return None
    out = [] if r[0] == "0" else [f"started with {r[0]} keys"]
    g = resp(*args, ("GET", "storm_owner"))
    if g is not None and g[0] != tag:
        out.append(f"held {g[0]!r}, not {tag!r}")
    return out


# ---- careless and hostile clients --------------------------------------------


def flooder(storm, k):
    """An attached lease with ttl_s 1 and thousands of pipelined renews,
    never read. Aimed: the renews stop when the daemon's queue of unread
    replies sits just under the mark (4 MiB) by fewer bytes than the
    lease_expired event, so the event is what crosses it. Then the
    connection is held, still unread, and dropped."""
    rng = storm.rng("flood", k)
    mark = int(os.environ.get("DBLEASE_STORM_QUEUE_MARK", str(4 << 20)))
    while storm.running():
        c = connect(storm, f"f{k}")
        if not c:
            continue
        lease = lease_of(c, c.wait(c.send("lease", LEASE_WAIT_MS / 1000, ttl_s=1,
                                          wait_ms=LEASE_WAIT_MS)))
        if lease:
            aimed = flood(storm, c, rng, lease["id"], mark)
            storm.count("floods aimed at the mark" if aimed else
                        "floods that missed it (held back, cut off or expired)")
            storm.sleep(rng.uniform(1.5, 4))
        c.close()


def flood(storm, c, rng, lease_id, mark):
    # One renew read back gives the size of every reply to come. ttl_s 1,
    # or 2 now and then, so that a daemon slowed by everything else does
    # not always end the lease mid-flood.
    ttl = rng.choice((1, 2))
    rid = c.send("renew", lease=lease_id, ttl_s=ttl)
    r = c.wait(rid)
    if not r or not r.get("ok"):
        return False
    reply_len = len(json.dumps(r, separators=(",", ":"))) + 1
    base = reply_len - len(json.dumps(rid))

    def line(i, pad=0):
        return '{"id":"%s","op":"renew","lease":"%s","ttl_s":%d}\n' % (
            f"x{i:07d}" + "p" * pad, lease_id, ttl)

    event_len = len('{"event":"lease_expired","lease":"%s"}\n' % lease_id)
    target = mark - rng.randint(1, event_len - 1)
    c.s.setblocking(False)
    produced, i = 0, 0
    one = base + len('"x0000000"')
    while True:
        queued = settled(c.s)
        if queued is None:
            return False  # the daemon stopped reading us: backpressure
        queued = produced - queued
        gap = target - queued
        if gap < 2 * one:
            break
        n = min(2000, gap // one - 1)
        if not send_all(c.s, "".join(line(i + j) for j in range(n)).encode()):
            return False
        i += n
        produced += n * one
    queued = settled(c.s)
    if queued is None:
        return False
    gap = target - (produced - queued)
    if gap >= one:  # one last renew whose reply fills the gap exactly
        if not send_all(c.s, line(i, gap - one).encode()):
            return False
        if settled(c.s) is None:
            return False
    return True


def settled(s, limit=10.0):
    """Once the daemon has read all we sent and answered it: the bytes of
    replies waiting in our socket. None when it stops reading us."""
    end = time.monotonic() + limit
    while outq(s) > 0:
        if time.monotonic() > end:
            return None
        time.sleep(0.005)
    time.sleep(0.05)  # the loop turn that answers what it just read
    return inq(s)


def send_all(s, data, limit=10.0):
    end = time.monotonic() + limit
    while data:
        try:
            data = data[s.send(data):]
        except BlockingIOError:
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        except OSError:
            return False
    return True


GARBAGE = [
    lambda rng: bytes(rng.choice(range(1, 256)) for _ in range(rng.randint(1, 400))).replace(b"\n", b" "),
    lambda rng: b'{"op":"hello","client":"\xff\xfe\xc0\xaf"}',
    lambda rng: b'{"op":"lease","template":"\xed\xa0\x80"}',
    lambda rng: b"[" * rng.randint(1, 5000) + b"]" * rng.randint(0, 5000),
    lambda rng: b'{"id":1.5,"op":"status"}',
    lambda rng: b'{"id":{"a":[]},"op":"lease"}',
    lambda rng: b'{"op":"status"}\x00{"op":"status"}',
    lambda rng: b"\x00" * rng.randint(1, 100),
    lambda rng: b'{"id":true,"op":"release","lease":null}',
    lambda rng: b'{"op":"renew","lease":"L-' + b"f" * rng.randint(0, 40) + b'"}',
    lambda rng: b"   ",
]

# Well-formed JSON with a valid id but wrong in its arguments: each must
# still get exactly one reply, with its id.
WRONG = [
    {"op": "fly"}, {"op": "lease", "ttl_s": "long"}, {"op": "lease", "ttl_s": -5},
    {"op": "lease", "kind": "mysql"}, {"op": "lease", "wait_ms": 10 ** 12},
    {"op": "release"}, {"op": "renew", "lease": 7}, {"op": "template.ensure", "template": "../x"},
    {"op": "template.finalize", "template": "race", "hash": "nope"}, {"op": "lease", "template": "nope"},
    {"op": "hello", "proto": 99}, {"op": "status", "extra": {"deep": [1, [2, [3]]]}},
    {"op": "lease", "wait_ms": 0}, {"op": "drain", "force": "please"},
]


def garbage(storm, k):
    """Lines of garbage, invalid UTF-8 and wrong arguments, mixed with
    well-formed requests on one connection that reads every reply."""
    rng = storm.rng("garbage", k)
    while storm.running():
        c = connect(storm, f"g{k}")
        if not c:
            continue
        for _ in range(rng.randint(5, 60)):
            if rng.random() < 0.5:
                ok = c.send_raw(rng.choice(GARBAGE)(rng) + b"\n")
            else:
                req = dict(rng.choice(WRONG))
                if req.get("op") == "drain":
                    continue  # root is an admin here: a real drain would end the storm
                rid = c.next_id()
                c.expect(rid, req["op"], 1)
                ok = c.send_raw((json.dumps(dict(req, id=rid)) + "\n").encode())
                if not ok:
                    c.pending.pop(rid, None)
            if not ok:
                break
        c.wait(c.send("status"))
        c.finish()
        storm.count("garbage rounds")
        storm.sleep(rng.uniform(0.02, 0.3))


def huge(storm, k):
    """Lines over the 64 KiB limit, with and without their newline, and a
    long line just under it that must be answered."""
    rng = storm.rng("huge", k)
    while storm.running():
        c = connect(storm, f"h{k}")
        if not c:
            continue
        what = rng.randrange(3)
        if what == 0:
            rid = c.next_id()
            c.expect(rid, "hello", 0)
            pad = "y" * rng.randint(1000, 60000)
            if not c.send_raw(('{"id":"%s","op":"hello","client":"%s"}\n' % (rid, pad)).encode()):
                c.pending.pop(rid, None)
            c.finish()
        else:
            blob = b"z" * rng.randint(65537, 3 << 20) + (b"\n" if what == 1 else b"")
            c.send_raw(blob)
            c.drain(0.5)
            c.close()
        storm.count("huge lines")
        storm.sleep(rng.uniform(0.1, 0.6))


CLIENT = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
while s.recv(65536): pass
"""


def killer(storm, k):
    """Clients killed with SIGKILL at a random moment of a request: the CLI
    mid-run, raw clients mid-lease and mid-ensure. Only the process group
    each started is killed."""
    rng = storm.rng("killer", k)
    while storm.running():
        what = rng.randrange(4)
        if what == 0:
            cmd = [os.environ["DBLEASE"], "run", "--", "sleep", "3"]
        else:
            req = [{"op": "lease", "wait_ms": 3000}, {"op": "lease", "kind": "redis"},
                   {"op": "template.ensure", "template": "race", "hash": "h%d" % rng.randint(1, 3)}][what - 1]
            cmd = [sys.executable, "-c", CLIENT, storm.sock, json.dumps(dict(req, id=1))]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, env=dict(os.environ, DBLEASE_SOCKET=storm.sock))
        storm.sleep(rng.uniform(0, 0.8))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        storm.count("clients killed")
        storm.sleep(rng.uniform(0.05, 0.4))


def loris(storm, k):
    """A request written a byte at a time; half of them never finished."""
    rng = storm.rng("loris", k)
    while storm.running():
        c = connect(storm, f"l{k}")
        if not c:
            continue
        rid = c.next_id()
        data = ('{"id":"%s","op":"status"}\n' % rid).encode()
        stop_at = len(data) if rng.random() < 0.5 else rng.randint(1, len(data) - 1)
        if stop_at == len(data):
            c.expect(rid, "status", 0)
        for i in range(stop_at):
            if not c.send_raw(data[i:i + 1]):
                c.pending.pop(rid, None)
                break
            storm.sleep(rng.uniform(0.01, 0.15))
        if stop_at < len(data):
            storm.sleep(rng.uniform(1, 5))
        c.finish()
        storm.count("slow lines")


def racer(storm, k):
    """template.ensure for one name with different hashes from two clients
    at once; a claim is migrated and finalized, abandoned, or dropped with
    its connection. Each ensure must get exactly one reply."""
    rng = storm.rng("race", k)
    while storm.running():
        c = connect(storm, f"r{k}")
        if not c:
            continue
        h = "h%d" % rng.randint(1, 3)
        r = c.wait(c.send("template.ensure", 5, template="race", hash=h, wait_ms=5000))
        t = (r or {}).get("template") or {}
        if t.get("state") == "migrate":
            fate = rng.randrange(3)
            if fate == 0:
                ok = psql(t["url"], "CREATE TABLE IF NOT EXISTS r (x int)") is not None
                c.wait(c.send("template.finalize", template="race", hash=h, ok=ok))
            elif fate == 1:
                c.wait(c.send("template.finalize", template="race", hash=h, ok=False))
            storm.count("claims")
        elif t.get("state") == "ready" and rng.random() < 0.5:
            lease = lease_of(c, c.wait(c.send("lease", 3, template="race", wait_ms=3000)))
            if lease:
                c.wait(c.send("release", lease=lease["id"]))
        c.finish()
        storm.sleep(rng.uniform(0, 0.3))


def churn(storm, k):
    """The config template's sql_dir changes under the daemon: files come
    and go, a FIFO, a dangling symlink and a link to /dev/zero appear (each
    only when its actor is on), then SIGHUP; leases from it now and then."""
    rng = storm.rng("churn", k)
    d = os.path.join(storm.tmp, "churn")
    specials = [s for s in ("fifo", "dangling", "zero") if s in storm.actors]
    pid = int(storm.daemon_pid.split(":")[0])
    n = 0
    while storm.running():
        n += 1
        what = rng.randrange(4 + len(specials))
        if what == 0:
            write(d, f"{n:03d}_t.sql", f"CREATE TABLE t{n} (x int);\n")
        elif what == 1:
            write(d, f"{n:03d}_bad.sql", "CREATE TABLEE oops;\n")
        elif what == 2:
            remove_one(rng, d)
        elif what == 3:
            c = connect(storm, f"c{k}")
            if c:
                lease = lease_of(c, c.wait(c.send("lease", 3, template="churn", wait_ms=3000)))
                if lease:
                    c.wait(c.send("release", lease=lease["id"]))
                c.finish()
        else:
            special(d, specials[what - 4], n)
        if rng.random() < 0.5:
            os.kill(pid, signal.SIGHUP)
            storm.count("SIGHUPs")
        storm.sleep(rng.uniform(0.2, 1.2))


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)
    os.chmod(os.path.join(d, name), 0o644)


def remove_one(rng, d):
    names = sorted(os.listdir(d))
    if names:
        os.unlink(os.path.join(d, rng.choice(names)))


def special(d, kind, n):
    path = os.path.join(d, f"{n:03d}_{kind}.sql")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling":
        os.symlink(os.path.join(d, "nowhere", "x.sql"), path)
    else:
        os.symlink("/dev/zero", path)


ACTORS = {"watch": (watcher, 1), "normal": (normal, 3), "flood": (flooder, 1),
          "garbage": (garbage, 1), "huge": (huge, 1), "killer": (killer, 1),
          "loris": (loris, 3), "race": (racer, 2), "churn": (churn, 1)}
