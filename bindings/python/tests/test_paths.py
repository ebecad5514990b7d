import os

from dblease import default_socket_path


def test_explicit_socket_wins(monkeypatch):
    monkeypatch.setenv("DBLEASE_SOCKET", "/x/y.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert default_socket_path() == "/x/y.sock"


def test_xdg_when_absolute(monkeypatch):
    monkeypatch.setenv("DBLEASE_SOCKET", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert default_socket_path() == "/run/user/7/dblease/dblease.sock"


def test_relative_xdg_is_ignored(monkeypatch):
    monkeypatch.delenv("DBLEASE_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "run/user/7")
    want = "/run/dblease/dblease.sock" if os.getuid() == 0 else f"/tmp/dblease-{os.getuid()}/dblease.sock"
    assert default_socket_path() == want
