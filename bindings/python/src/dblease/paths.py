"""Where dbleased listens: the same rule as proto/paths.c and the CLI."""
import os


def _env(name: str):
    v = os.environ.get(name)
    return v if v else None  # unset and empty mean the same


def default_socket_path() -> str:
    explicit = _env("DBLEASE_SOCKET")
    if explicit:
        return explicit
    xdg = _env("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):  # the XDG spec says to ignore a relative one
        return f"{xdg}/dblease/dblease.sock"
    uid = os.getuid()
    if uid == 0:
        return "/run/dblease/dblease.sock"
    return f"/tmp/dblease-{uid}/dblease.sock"
