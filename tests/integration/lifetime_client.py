#!/usr/bin/env python3
"""Clients that misbehave on purpose, for test_lifetime.sh.

Each mode prints one JSON object (what it saw) on stdout; the shell test
asserts on it. Standard library only.

  fill-to-event SOCK   an attached lease, then renews pipelined without
                       reading until the daemon's write queue for us sits
                       just under the 4 MiB cut-off, then wait for the
                       lease to expire (its event crosses the mark).
  pipeline SOCK N      pipeline N hello requests without reading,
                       then read everything; report how many replies came.
  noread SOCK N        pipeline N requests, never read; report when the
                       daemon closed us (or that it never did).
  lease-and-flood SOCK an attached lease, then requests until paused; hold.
  longline SOCK N      pipeline N requests and a line over the limit, never
                       read, hold the connection open.
"""
import array
import fcntl
import json
import os
import select
import socket
import sys
import termios
import threading
import time

OLD_CUTOFF = 4 << 20  # session.c's MAX_WRITE_QUEUE on the code this reproduces
SIOCOUTQ = termios.TIOCOUTQ


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def ioctl_int(s, req):
    buf = array.array("i", [0])
    fcntl.ioctl(s.fileno(), req, buf, True)
    return buf[0]


def read_line(s, buf=bytearray()):
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("daemon closed the connection")
        buf.extend(chunk)
    i = buf.index(b"\n")
    line = bytes(buf[:i])
    del buf[: i + 1]
    return json.loads(line)


def send_all_until_stuck(s, data, stuck_s):
    """Send data without blocking for long; stop when the daemon has not
    taken a byte for stuck_s (it stopped reading us). Returns bytes sent."""
    s.setblocking(False)
    sent = 0
    while sent < len(data):
        _, w, _ = select.select([], [s], [], stuck_s)
        if not w:
            break
        try:
            sent += s.send(data[sent : sent + 65536])
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    s.setblocking(True)
    return sent


def wait_consumed(s, deadline_s):
    """Until the daemon read everything we sent and its replies settled
    (what the kernel took stops changing). False if it stopped reading."""
    end = time.monotonic() + deadline_s
    last = -1
    while time.monotonic() < end:
        outq = ioctl_int(s, SIOCOUTQ)
        inq = ioctl_int(s, termios.FIONREAD)
        if outq == 0 and inq == last:
            return True
        last = inq
        time.sleep(0.05)
    return False


def renew_line(rid, lease, ttl):
    return b'{"id":%d,"op":"renew","lease":"%s","ttl_s":%d}\n' % (rid, lease.encode(), ttl)


def fill_to_event(path):
    s = connect(path)
    s.sendall(b'{"id":1,"op":"lease","ttl_s":1,"wait_ms":30000}\n')
    r = read_line(s)
    if not r.get("ok"):
        return {"error": "lease refused", "reply": r}
    lease = r["lease"]["id"]
    ttl = 3  # long enough that the lease never lapses while we fill
    rid = 100000  # six-digit ids: every reply has the same length
    s.sendall(renew_line(rid, lease, ttl))
    first = json.dumps(read_line(s), separators=(",", ":"))
    rl = len(first) + 1
    rid += 1
    unread = 0  # reply bytes the daemon produced that we did not read
    target = OLD_CUTOFF - 64 * 1024
    paused = False
    tail = b""
    # A bulk of renews, then single steps computed from what the kernel holds.
    while True:
        inq = ioctl_int(s, termios.FIONREAD)
        queued = unread * rl - inq  # still in the daemon's write queue
        if queued >= target:
            n = (OLD_CUTOFF - queued) // rl  # the last that stays at or under 4 MiB
        else:
            n = max(1, (target - queued) // rl)
        if n <= 0:
            break
        data = b"".join(renew_line(rid + k, lease, ttl) for k in range(n))
        sent = send_all_until_stuck(s, data, 2.0)
        if sent < len(data):
            # The daemon stopped reading us (backpressure). Whole lines sent
            # count; the one cut short is finished once we read (below).
            paused = True
            cut = data.find(b"\n", sent)
            tail = data[sent : cut + 1]
            rid += data[: cut + 1].count(b"\n")
            break
        if not wait_consumed(s, 5.0):
            paused = True
            rid += n
            break
        rid += n
        unread += n
        if queued >= target:
            break
    # Now just wait: the lease expires within ttl seconds; its event is the
    # message that crosses 4 MiB on the old code.
    time.sleep(ttl + 1.5)
    return {"lease": lease, "reply_len": rl, "renews": rid - 100001, "paused": paused,
            "queued": unread * rl - ioctl_int(s, termios.FIONREAD), "sock": s, "tail": tail}


def read_all(s, idle_s):
    """Read until EOF or idle_s without data; return the parsed lines."""
    s.settimeout(idle_s)
    buf = bytearray()
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf.extend(chunk)
    except socket.timeout:
        pass
    return [json.loads(x) for x in bytes(buf).split(b"\n") if x]


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "fill-to-event":
        out = fill_to_event(path)
        s = out.pop("sock", None)
        tail = out.pop("tail", b"")
        if s is not None:
            t = threading.Thread(target=lambda: s.sendall(tail))
            t.start()
            msgs = read_all(s, 3.0)
            t.join(5.0)
            out["replies"] = sum(1 for m in msgs if "id" in m)
            out["events"] = [m.get("event") for m in msgs if "event" in m]
        print(json.dumps(out))
    elif mode == "pipeline":
        n = int(sys.argv[3])
        s = connect(path)
        data = b"".join(b'{"id":%d,"op":"hello","client":"%s"}\n' % (k, b"x" * 200)
                        for k in range(1, n + 1))
        sent = send_all_until_stuck(s, data, 3.0)
        paused = sent < len(data)
        # Read while finishing the send, as a slow client would.
        s.setblocking(True)
        rest = data[sent:]

        def finish_send():
            try:
                s.sendall(rest)
            except OSError:
                pass  # cut off: the reply count says so
        t = threading.Thread(target=finish_send)
        t.start()
        msgs = []
        buf = bytearray()
        s.settimeout(10.0)
        try:
            while len(msgs) < n:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                buf.extend(chunk)
                *lines, tail = bytes(buf).split(b"\n")
                buf = bytearray(tail)
                msgs.extend(json.loads(x) for x in lines if x)
        except (socket.timeout, ConnectionResetError):
            pass
        t.join(10.0)
        ids = [m.get("id") for m in msgs]
        print(json.dumps({"sent_before_pause": sent, "paused": paused, "replies": len(msgs),
                          "in_order": ids == list(range(1, len(ids) + 1)),
                          "all_ok": all(m.get("ok") for m in msgs)}))
    elif mode == "noread":
        n = int(sys.argv[3])
        s = connect(path)
        data = b"".join(b'{"id":%d,"op":"hello","client":"%s"}\n' % (k, b"x" * 200)
                        for k in range(1, n + 1))
        t0 = time.monotonic()
        send_all_until_stuck(s, data, 1.0)
        # Never read; wait for the daemon to hang up (peek, so nothing is read).
        closed_after = None
        deadline = t0 + float(sys.argv[4]) if len(sys.argv) > 4 else t0 + 30
        while time.monotonic() < deadline:
            try:
                s.send(b"")
                r, _, _ = select.select([s], [], [], 0.1)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    closed_after = time.monotonic() - t0
                    break
                # A peer that closed shows POLLHUP/POLLRDHUP.
                p = select.poll()
                p.register(s, select.POLLRDHUP | select.POLLHUP)
                ev = p.poll(0)
                if ev and ev[0][1] & (select.POLLRDHUP | select.POLLHUP):
                    closed_after = time.monotonic() - t0
                    break
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - t0
                break
        print(json.dumps({"closed_after": closed_after}))
    elif mode == "lease-and-flood":
        # An attached lease, then requests until the daemon pauses us; then
        # hold still (the test kills us by pid).
        s = connect(path)
        s.sendall(b'{"id":1,"op":"lease","wait_ms":30000}\n')
        lease = read_line(s)["lease"]["id"]
        data = b"".join(b'{"id":%d,"op":"hello"}\n' % k for k in range(2, 60000))
        sent = send_all_until_stuck(s, data, 1.0)
        print(json.dumps({"lease": lease, "paused": sent < len(data)}), flush=True)
        time.sleep(120)
    elif mode == "longline":
        # Unread replies, then a line over the limit: the daemon closes us
        # after flushing, which we never let it finish.
        n = int(sys.argv[3])
        s = connect(path)
        s.sendall(b"".join(b'{"id":%d,"op":"hello"}\n' % k for k in range(1, n + 1)))
        s.sendall(b"x" * (70 * 1024) + b"\n")
        print("sent", flush=True)
        time.sleep(120)  # the test ends us by pid
    else:
        print("unknown mode", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
