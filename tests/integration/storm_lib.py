"""The storm's bookkeeping: promises and how they broke, connections that
check every reply against its request, and the small clients (psql, RESP)
that look inside a lease. Python 3 standard library only."""
import fcntl
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

# The promises the storm checks, in the order the summary lists them.
DAEMON_LIVES = "the daemon never dies"
STATUS_FAST = "status answers within 1 s every time it is polled"
ONE_REPLY = "every well-formed request of a reading client gets exactly one reply with its id"
EXCLUSIVE = "no database is held by two leases at once"
EMPTY_OWN = "a lease starts empty and stays its holder's own"
STOPS = "SIGTERM stops the daemon within a bounded time"
NO_SURVIVOR = "no server process the daemon started survives it"
BOUNDED = "the daemon's memory stays bounded"
PROMISES = [DAEMON_LIVES, STATUS_FAST, ONE_REPLY, EXCLUSIVE, EMPTY_OWN, STOPS, NO_SURVIVOR,
            BOUNDED]

GRACE_S = 15  # beyond a request's own wait, how long its reply may take


class Storm:
    """What every actor shares: the clock, the stop flag, the findings."""

    def __init__(self, sock, state, tmp, seed, seconds, actors, daemon_pid):
        self.sock, self.state, self.tmp = sock, state, tmp
        self.seed, self.seconds, self.actors = seed, seconds, actors
        self.daemon_pid = daemon_pid
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.broken = {p: [] for p in PROMISES}
        self.counts = {}
        self.ledger = []  # (resource, start, end, holder)
        self.servers = set()  # "pid:starttime" of every server status listed
        self.helper_errors = []
        self.rounds = {}  # actor -> connections it opened
        # Set when the daemon is dead or has stopped answering: replies still
        # owed are given up at once (each already broke its promise).
        self.abandon = threading.Event()

    def rng(self, actor, k=0):
        """Each actor's own stream: the same seed replays the same choices."""
        return random.Random(f"{self.seed}:{actor}:{k}")

    def now(self):
        return time.monotonic() - self.t0

    def running(self):
        return not self.stop.is_set() and time.monotonic() < self.deadline

    def violate(self, promise, msg):
        line = f"[{self.now():6.1f}s] {msg}"
        if promise in (STATUS_FAST, ONE_REPLY) and self.dying():
            # A dead daemon answers nothing: one finding, not one per client.
            self.count("failures after the daemon died")
            return
        with self.lock:
            self.broken[promise].append(line)
            first = len(self.broken[promise]) <= 5
        if first:
            print(f"BROKEN: {promise}: {line}", flush=True)

    def dying(self):
        """Whether the daemon is gone or going: its sockets close while it
        exits, a moment before /proc shows it gone."""
        end = time.monotonic() + 0.5
        while proc_alive(self.daemon_pid):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def sleep(self, s):
        """A pause that ends early when the storm is stopped."""
        self.stop.wait(s)


def proc_id(pid):
    """'pid:starttime', so a recycled pid never passes for the process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return f"{pid}:{fields[19]}"
    except (OSError, IndexError):
        return None


def proc_alive(pid_start):
    pid = pid_start.split(":")[0]
    if proc_id(pid) != pid_start:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pids):
    """Every descendant of pids (a postmaster's backends), by /proc."""
    parent = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as f:
                    parent[int(e)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = set(), set(pids)
    while todo:
        kids = {p for p, pp in parent.items() if pp in todo and p not in out}
        out |= kids
        todo = kids
    return out


class Conn:
    """One connection to the daemon. Requests get ids of this connection's
    own ("who-n"); every line read is matched: a reply to an id never sent,
    or a second reply to one, or none before its deadline, breaks ONE_REPLY.
    Events are kept for the caller."""

    def __init__(self, storm, who, timeout=5.0):
        self.storm, self.who, self.n = storm, who, 0
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        try:
            self.s.connect(storm.sock)
        except OSError:
            self.s.close()
            raise
        self.buf = b""
        self.pending = {}  # id -> (op, deadline)
        self.answered = set()
        self.replies = {}
        self.events = []
        self.eof = False

    def next_id(self):
        self.n += 1
        return f"{self.who}-{self.n}"

    def send_raw(self, data):
        """Bytes as they are; False when the daemon hung up on us."""
        try:
            self.s.sendall(data)
            return True
        except OSError:
            self.eof = True
            return False

    def send(self, op, wait_s=0, **args):
        """A well-formed request; its reply is due within wait_s + GRACE_S."""
        rid = self.next_id()
        req = {"id": rid, "op": op}
        req.update(args)
        self.expect(rid, op, wait_s)
        if not self.send_raw((json.dumps(req) + "\n").encode()):
            # It did not go out whole: no reply is owed.
            self.pending.pop(rid, None)
            return None
        return rid

    def expect(self, rid, op, wait_s=0):
        self.pending[rid] = (op, time.monotonic() + wait_s + GRACE_S)

    def _take(self, line):
        try:
            msg = json.loads(line)
        except ValueError:
            self.storm.violate(ONE_REPLY, f"{self.who}: a line that is not JSON: {line[:120]!r}")
            return
        if not isinstance(msg, dict):
            self.storm.violate(ONE_REPLY, f"{self.who}: a line that is not an object: {line[:120]!r}")
        elif "event" in msg:
            self.events.append(msg)
            self.storm.count("event " + str(msg.get("event")))
        elif msg.get("id") is None:
            self.storm.count("replies without id (to garbage)")
        else:
            rid = msg["id"]
            if rid in self.answered:
                self.storm.violate(ONE_REPLY, f"{self.who}: a second reply to {rid}: {line[:160]!r}")
            elif rid not in self.pending:
                self.storm.violate(ONE_REPLY, f"{self.who}: a reply to {rid}, never sent: {line[:160]!r}")
            else:
                self.pending.pop(rid)
                self.answered.add(rid)
                self.replies[rid] = msg

    def _read_some(self, until):
        """Reads what arrives before until; False at end of stream."""
        left = until - time.monotonic()
        if left <= 0 or self.eof:
            return not self.eof
        r, _, _ = select.select([self.s], [], [], left)
        if not r:
            return True
        try:
            data = self.s.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self._take(line.decode("utf-8", "replace"))
        return True

    def wait(self, rid):
        """The reply to rid, or None (the promise broken, and said so)."""
        if rid is None:
            return None
        while rid not in self.replies and rid in self.pending:
            until = min(self.pending[rid][1], time.monotonic() + 0.5)
            if not self._read_some(until) or self.storm.abandon.is_set():
                break
            if rid in self.pending and time.monotonic() >= self.pending[rid][1]:
                break
        if rid in self.replies:
            return self.replies.pop(rid)
        if rid in self.pending:
            self._missed(rid)
        return None

    def _missed(self, rid):
        op, _ = self.pending.pop(rid)
        why = "the daemon closed the connection" if self.eof else "none in time"
        self.storm.violate(ONE_REPLY, f"{self.who}: no reply to {op} {rid} ({why})")

    def finish(self):
        """Waits for every reply still owed, then closes."""
        for rid in list(self.pending):
            self.wait(rid)
        self.close()

    def close(self):
        self.s.close()

    def lease_ended(self, lease_id):
        """Whether an event said the lease is over."""
        self.drain(0)
        return any(e.get("lease") == lease_id for e in self.events)

    def drain(self, s):
        end = time.monotonic() + s
        while self._read_some(end) and time.monotonic() < end:
            pass
        if s == 0:
            r, _, _ = select.select([self.s], [], [], 0)
            if r and not self.eof:
                self._read_some(time.monotonic() + 0.01)


def inq(s):
    """Bytes the daemon wrote to us that we have not read (SIOCINQ)."""
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


def outq(s):
    """Bytes we wrote that the daemon has not read yet (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def psql(url, sql, timeout=20):
    """The single value, or None when the server could not be used."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="5")
    try:
        r = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def resp(host, port, password, db, *commands, timeout=5):
    """Runs Redis commands (AUTH and SELECT first); their replies as strings,
    or None when the server could not be used."""
    def enc(args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        return out

    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            f = s.makefile("rb")
            s.sendall(b"".join(enc(c) for c in (("AUTH", password), ("SELECT", db)) + commands))
            out = []
            for _ in range(2 + len(commands)):
                line = f.readline().rstrip(b"\r\n")
                if not line or line[:1] == b"-":
                    return None
                if line[:1] == b"$":
                    n = int(line[1:])
                    out.append(None if n < 0 else f.read(n + 2)[:-2].decode())
                else:
                    out.append(line[1:].decode())
            return out[2:]
    except (OSError, ValueError):
        return None


def helper_error(storm, actor):
    import traceback
    msg = f"{actor}: {traceback.format_exc()}"
    with storm.lock:
        storm.helper_errors.append(msg)
    print("HELPER ERROR in " + msg, file=sys.stderr, flush=True)
