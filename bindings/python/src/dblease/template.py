"""Client-migrated templates: run your migrations once, lease clones of the result.

Every process (each xdist worker) calls template(); the daemon gives one of
them the claim, the others wait until it has finalized (PROTOCOL.md,
"Templates and client-driven migrations").
"""
import hashlib
import os
import threading
from typing import Callable, Dict, Optional, Tuple

from .client import Client, DbleaseError

# Long enough for a slow migration run by another worker; the daemon's cap is 600000.
TEMPLATE_WAIT_MS = 120000

_done: Dict[Tuple[str, str], bool] = {}
_done_lock = threading.Lock()


def hash_dir(path: str) -> str:
    """Hex SHA-256 of a migration directory: for every regular file under it,
    in byte order of its relative path ('/'-separated): the path, NUL, the
    content, NUL. Names starting with '.' and __pycache__ (which importing
    alembic's versions creates) are skipped. The Go and Node packages compute
    the same value, so that suites in several languages share a template."""
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        for n in names:
            full = os.path.join(root, n)
            if n.startswith(".") or not os.path.isfile(full):
                continue
            files.append((os.path.relpath(full, path).replace(os.sep, "/").encode(), full))
    if not files:
        raise ValueError(f"no files under {path!r}: pass the directory that holds your migrations")
    h = hashlib.sha256()
    for rel, full in sorted(files):
        with open(full, "rb") as f:
            data = f.read()
        h.update(rel + b"\0" + data + b"\0")
    return h.hexdigest()


def template(name: str, dir: Optional[str] = None, migrate: Optional[Callable[[str], None]] = None,
             hash: Optional[str] = None, wait: int = TEMPLATE_WAIT_MS,
             socket_path: Optional[str] = None) -> str:
    """Make sure template `name` exists at the version of `dir` (or `hash`).

    If this process gets the claim, migrate(url) runs against the template
    database (close every connection it opens before returning); when it
    raises, the claim is abandoned and the error re-raised. Returns `name`,
    to pass as lease(template=...) or from a `dblease_template` fixture."""
    if hash is None:
        if dir is None:
            raise ValueError("template() needs dir= (the migrations directory) or hash=")
        hash = hash_dir(dir)
    if migrate is None:
        raise ValueError("template() needs migrate=, a callable that migrates the database at the URL it gets")
    key = (name, hash)
    with _done_lock:  # once per process; the daemon serialises processes
        if _done.get(key):
            return name
        with Client(socket_path=socket_path, client_name=f"template {name} pid {os.getpid()}") as c:
            t = c.template_ensure(name, hash, wait=wait)
            if t.get("state") == "migrate":
                try:
                    migrate(t["url"])
                except BaseException:
                    c.template_finalize(name, hash, ok=False)
                    raise
                c.template_finalize(name, hash, ok=True)
            elif t.get("state") != "ready":
                raise DbleaseError("protocol", f"dbleased answered template.ensure {name} with state {t.get('state')!r}; "
                                   "upgrade the dblease package")
        _done[key] = True
    return name
