"""One connection to dbleased: NDJSON over a Unix socket (proto/PROTOCOL.md).

A Client is safe to share between threads: one request is in flight at a
time (a lock), replies are matched by id, and events that arrive while a
reply is awaited are kept for `events()` (or handed to `on_event`).
"""
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .paths import default_socket_path

PROTO = 1
# A lease or template.ensure may wait `wait_ms` in the daemon; our read
# timeout must outlast it (PROTOCOL.md §5), so we add this margin.
REPLY_MARGIN_S = 30.0
DEFAULT_WAIT_MS = 10000


class DbleaseError(Exception):
    """A failed request. `code` is the daemon's error code (PROTOCOL.md §8),
    or `unreachable` (no daemon on the socket: CLI exit 69) or `disconnected`
    (the daemon closed the connection) or `protocol` (a reply we cannot read)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """pool_exhausted and timeout mean "try again later" (CLI exit 75)."""
        return self.code in ("pool_exhausted", "timeout")


@dataclass
class Lease:
    id: str
    kind: str
    url: str
    host: str
    port: int
    user: str
    password: str
    template: str = "default"
    dbname: Optional[str] = None
    schema: Optional[str] = None
    db: Optional[int] = None
    expires_at: int = 0
    ttl_s: int = 0
    detached: bool = False
    extra: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:  # never print the password or url (§10.10)
        return f"Lease(id={self.id!r}, kind={self.kind!r}, template={self.template!r})"

    @classmethod
    def from_reply(cls, o: Dict[str, Any]) -> "Lease":
        known = {k: o[k] for k in cls.__dataclass_fields__ if k in o and k != "extra"}
        missing = [k for k in ("id", "kind", "url", "host", "port", "user", "password") if k not in o]
        if missing:
            raise DbleaseError("protocol", f"lease reply lacks {', '.join(missing)}: upgrade dblease or dbleased")
        extra = {k: v for k, v in o.items() if k not in known}
        return cls(**known, extra=extra)


class Client:
    """A connection to dbleased. Attached leases end when it closes."""

    def __init__(self, socket_path: Optional[str] = None, client_name: Optional[str] = None,
                 on_event: Optional[Callable[[Dict[str, Any]], None]] = None):
        self.socket_path = socket_path or default_socket_path()
        self.on_event = on_event
        self._events: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._buf = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(self.socket_path)
        except OSError as e:
            self._sock.close()
            raise DbleaseError(
                "unreachable",
                f"cannot connect to dbleased at {self.socket_path} ({e.strerror or e}); "
                "start it (dbleased), or set DBLEASE_SOCKET to where it listens") from None
        self.defaults: Dict[str, Any] = {}
        hello = self.request("hello", proto=PROTO, client=client_name or f"python pid {os.getpid()}")
        if hello.get("proto") != PROTO:
            self.close()
            raise DbleaseError("proto_version", f"dbleased speaks protocol {hello.get('proto')}, not {PROTO}")
        self.defaults = hello.get("defaults") or {}

    # -- plumbing --------------------------------------------------------
    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection: the daemon ends its attached leases."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    @property
    def closed(self) -> bool:
        return self._sock is None

    def events(self) -> List[Dict[str, Any]]:
        """Events received so far (lease_expired, instance_down), oldest first; clears them."""
        with self._lock:
            ev, self._events = self._events, []
        return ev

    def request(self, op: str, timeout: float = REPLY_MARGIN_S, **args: Any) -> Dict[str, Any]:
        """Send one request and return its reply's object; raise DbleaseError if not ok."""
        with self._lock:
            if self._sock is None:
                raise DbleaseError("disconnected", "this dblease Client is closed; make a new one")
            self._next_id += 1
            rid = self._next_id
            msg = {"id": rid, "op": op}
            msg.update({k: v for k, v in args.items() if v is not None})
            self._sock.settimeout(timeout)
            try:
                self._sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
                reply = self._await(rid)
            except socket.timeout:
                self.close()  # a late reply would be matched to nothing
                raise DbleaseError("timeout", f"no reply to {op} from dbleased within {timeout:.0f} s") from None
            except OSError as e:
                self.close()
                raise DbleaseError("disconnected", f"lost the connection to dbleased during {op}: {e}") from None
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise DbleaseError(str(err.get("code", "internal")), str(err.get("message", "no message")))
        return reply

    def _await(self, rid: int) -> Dict[str, Any]:
        while True:
            line = self._readline()
            try:
                o = json.loads(line)
            except ValueError:
                raise DbleaseError("protocol", f"dbleased sent a line that is not JSON: {line[:80]!r}") from None
            if not isinstance(o, dict):
                raise DbleaseError("protocol", "dbleased sent a line that is not a JSON object")
            if "event" in o and "ok" not in o:
                self._event(o)
            elif "ok" in o and o.get("id") == rid:
                return o
            elif "ok" in o and "id" not in o:
                return o  # a reply without id: the daemon could not read our line
            # a reply to an abandoned id: ignore

    def _event(self, o: Dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(o)
        else:
            self._events.append(o)

    def _readline(self) -> bytes:
        while b"\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                self.close()
                raise DbleaseError("disconnected", "dbleased closed the connection; is it stopping?")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def _wait_timeout(self, wait_ms: Optional[int]) -> float:
        if wait_ms is None:
            wait_ms = int(self.defaults.get("wait_ms", DEFAULT_WAIT_MS))
        return wait_ms / 1000.0 + REPLY_MARGIN_S

    # -- operations ------------------------------------------------------
    def lease(self, kind: str = "postgres", template: Optional[str] = None, ttl: Optional[int] = None,
              wait: Optional[int] = None, detach: bool = False) -> Lease:
        """Take an isolated database. ttl in seconds, wait in milliseconds."""
        r = self.request("lease", timeout=self._wait_timeout(wait), kind=kind, template=template,
                         ttl_s=ttl, wait_ms=wait, detach=detach or None)
        return Lease.from_reply(r.get("lease") or {})

    def release(self, lease_id: str, clean: bool = False, force: bool = False) -> None:
        """End a lease now. clean=True promises the database is unchanged."""
        self.request("release", lease=_id_of(lease_id), clean=clean or None, force=force or None)

    def renew(self, lease_id: str, ttl: Optional[int] = None) -> int:
        """Extend a lease to ttl seconds from now; returns the new expires_at."""
        return int(self.request("renew", lease=_id_of(lease_id), ttl_s=ttl)["expires_at"])

    def status(self) -> Dict[str, Any]:
        r = self.request("status")
        r.pop("ok", None)
        r.pop("id", None)
        return r

    def template_ensure(self, name: str, hash: str, wait: Optional[int] = None) -> Dict[str, Any]:
        """template.ensure: returns the template object; state "migrate" means the claim is ours."""
        r = self.request("template.ensure", timeout=self._wait_timeout(wait), template=name, hash=hash, wait_ms=wait)
        return r.get("template") or {}

    def template_finalize(self, name: str, hash: str, ok: bool = True) -> Dict[str, Any]:
        return self.request("template.finalize", template=name, hash=hash, ok=ok).get("template") or {}


def _id_of(lease: Any) -> str:
    return lease.id if isinstance(lease, Lease) else str(lease)
