#!/usr/bin/env python3
"""A randomized storm of hostile and careless clients against one running
dbleased (started by test_storm.sh), then SIGTERM. Prints each broken
promise as it is seen and a summary; exit 0 only when every promise held,
1 when one broke, 2 when the storm itself went wrong.

usage: storm.py SOCKET STATE_DIR TMP_DIR SEED SECONDS ACTORS
ACTORS: comma-separated names from storm_actors.ACTORS, the sql_dir
specials fifo, dangling, zero, and stuck (a client that never reads, still
connected at SIGTERM); "all" for every one.

storm.py --self-test checks the storm's own ledger logic and exits."""
import fcntl
import os
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from storm_actors import ACTORS, LEASE_WAIT_MS, poll_status, remember_servers  # noqa: E402
from storm_lib import (EXCLUSIVE, NO_SURVIVOR, PROMISES, STOPS, Storm, children_of,  # noqa: E402
                       helper_error, proc_alive, proc_id)

STOP_BOUND_S = int(os.environ.get("DBLEASE_STORM_STOP_S", "30"))


def run_actor(storm, name, fn, k):
    try:
        fn(storm, k)
    except Exception:  # a bug of the storm, not of the daemon: said apart
        helper_error(storm, f"{name}[{k}]")


def overlaps(ledger):
    """Pairs of intervals on one database that overlap."""
    out, by = [], {}
    for key, start, end, who in ledger:
        by.setdefault(key, []).append((start, end, who))
    for key, spans in by.items():
        spans.sort()
        last_end, last_who = None, None
        for start, end, who in spans:
            if last_end is not None and start < last_end:
                out.append(f"{key}: {who} from {start:.3f} while {last_who} held it until {last_end:.3f}")
            if last_end is None or end > last_end:
                last_end, last_who = end, who
    return out


def lock_free(state):
    """The daemon holds a lock on its lock file until its last moment."""
    try:
        fd = os.open(os.path.join(state, "dbleased.lock"), os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def servers_now(storm):
    """Every process the daemon runs for its servers: what status lists, their
    descendants, and anything whose cwd is in the state dir."""
    reply = poll_status(storm) if proc_alive(storm.daemon_pid) else None
    if reply:
        remember_servers(storm, reply)
    with storm.lock:
        roots = {int(p.split(":")[0]) for p in storm.servers if proc_alive(p)}
    found = set(roots) | children_of(roots)
    state = os.path.realpath(storm.state)
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                if os.readlink(f"/proc/{e}/cwd").startswith(state + "/"):
                    found.add(int(e))
            except OSError:
                pass
    daemon = int(storm.daemon_pid.split(":")[0])
    return {proc_id(p) for p in found if p != daemon} - {None}


def stop_daemon(storm):
    """SIGTERM with a client that never reads still connected (actor
    "stuck"); the daemon must be gone within STOP_BOUND_S."""
    stuck = None
    if "stuck" in storm.actors and proc_alive(storm.daemon_pid):
        import socket
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            stuck.connect(storm.sock)
            stuck.setblocking(False)
            # Replies well past what the kernel holds, well under the mark
            # past which the daemon may cut a client off; then a line over
            # 64 KiB, which the daemon answers and closes the connection
            # after: a close that waits for replies nobody reads.
            data = b'{"op":"hello"}\n' * 5000 + b"s" * 70000 + b"\n"
            t = time.monotonic()
            while data and time.monotonic() - t < 5:
                try:
                    data = data[stuck.send(data):]
                except BlockingIOError:
                    time.sleep(0.01)
        except OSError:
            pass
    servers = servers_now(storm)
    pid = int(storm.daemon_pid.split(":")[0])
    t = time.monotonic()
    alive = proc_alive(storm.daemon_pid)
    if alive:
        os.kill(pid, signal.SIGTERM)
        while not lock_free(storm.state) and time.monotonic() - t < STOP_BOUND_S:
            time.sleep(0.05)
        if lock_free(storm.state):
            print(f"storm: dbleased stopped {time.monotonic() - t:.1f} s after SIGTERM", flush=True)
        else:
            storm.violate(STOPS, f"dbleased still running {STOP_BOUND_S} s after SIGTERM; SIGKILL")
            alive = False  # killed by us: what it leaves is not a second finding
            if proc_alive(storm.daemon_pid):
                os.kill(pid, signal.SIGKILL)
    if stuck:
        stuck.close()
    # What it started must be gone with it (a moment for the kernel to reap).
    end = time.monotonic() + 10
    while time.monotonic() < end and any(proc_alive(p) for p in servers):
        time.sleep(0.05)
    left = [p for p in servers if proc_alive(p)]
    listing = ", ".join(f"{p.split(':')[0]} ({cmdline(p)})" for p in left)
    if left and alive:
        storm.violate(NO_SURVIVOR, "still running after dbleased exited: " + listing)
    elif left:  # it died or we killed it: nobody stopped them
        print(f"storm: servers the daemon left when it died or was killed (killed now): {listing}",
              flush=True)
        for p in left:  # ours: the daemon we started started them
            try:
                os.kill(int(p.split(":")[0]), signal.SIGKILL)
            except OSError:
                pass


def cmdline(pid_start):
    try:
        with open(f"/proc/{pid_start.split(':')[0]}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def summary(storm):
    print(f"\nstorm seed {storm.seed}, {storm.seconds} s, actors {','.join(sorted(storm.actors))}")
    for what, n in sorted(storm.counts.items()):
        print(f"  {n:8d}  {what}")
    print(f"  {len(storm.ledger):8d}  ledger intervals")
    broken = 0
    for p in PROMISES:
        found = storm.broken[p]
        if found:
            broken += 1
            print(f"PROMISE BROKEN ({len(found)}x): {p}")
            for line in found[:5]:
                print(f"    {line}")
        else:
            print(f"promise kept: {p}")
    return broken


def self_test():
    """The ledger check must see an overlap, and only an overlap."""
    a, b = "pg h:1/d1/", "pg h:1/d2/"
    assert overlaps([(a, 0, 2, "x"), (a, 2, 3, "y"), (b, 1, 5, "z")]) == []
    assert len(overlaps([(a, 0, 2, "x"), (a, 1.5, 3, "y")])) == 1
    assert len(overlaps([(a, 0, 10, "x"), (a, 1, 2, "y"), (a, 3, 4, "z")])) == 2
    print("storm.py: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    sock, state, tmp, seed, seconds, actors = sys.argv[1:7]
    names = set(ACTORS) | {"fifo", "dangling", "zero", "stuck"}
    actors = names if actors == "all" else set(actors.split(","))
    if actors - names:
        sys.exit(f"storm.py: unknown actors {','.join(sorted(actors - names))}; known: {','.join(sorted(names))}")
    with open(os.path.join(state, "dbleased.lock")) as f:
        daemon_pid = proc_id(int(f.read().strip()))
    storm = Storm(sock, state, tmp, seed, int(seconds), actors | {"watch"}, daemon_pid)
    storm.redis = shutil.which("redis-server") is not None
    threads = []
    for name, (fn, n) in ACTORS.items():
        if name in storm.actors:
            for k in range(n):
                t = threading.Thread(target=run_actor, args=(storm, name, fn, k), daemon=True)
                t.start()
                threads.append(t)
    # The storm ends at its deadline or when the watcher stops it; each actor
    # then finishes its round, waiting for the replies it is owed.
    while any(t.is_alive() for t in threads) and time.monotonic() < storm.deadline:
        time.sleep(0.2)
    storm.stop.set()
    end = time.monotonic() + LEASE_WAIT_MS / 1000 + 37
    for t in threads:
        t.join(max(0, end - time.monotonic()))
    if any(t.is_alive() for t in threads):
        helper_error_msg = "actors still running 45 s after the storm ended"
        storm.helper_errors.append(helper_error_msg)
        print("HELPER ERROR: " + helper_error_msg, flush=True)
    for o in overlaps(storm.ledger):
        storm.violate(EXCLUSIVE, o)
    stop_daemon(storm)
    broken = summary(storm)
    if storm.helper_errors:
        print(f"{len(storm.helper_errors)} error(s) in the storm itself (see above)")
        sys.exit(2)
    print(f"replay: DBLEASE_STORM_SEED={seed} DBLEASE_STORM_SECONDS={seconds} DBLEASE_STORM_ACTORS={','.join(sorted(actors))}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
