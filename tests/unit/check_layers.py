#!/usr/bin/env python3
"""The daemon's layers, checked (daemon/README.md says who may call whom).

Each folder of daemon/ is a layer. A file may include headers of its own
layer and of the layers listed for it below, and nothing else; lower layers
never call into the daemon object's logic (dbld_*() but the read-only
dbld_stopping()) or into sessions. Exits 1 naming every violation.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
DAEMON = os.path.join(ROOT, "daemon")

# layer -> the layers it may include from. "top" is daemon/*.h: dbld.h, the
# shared context (loop, config, the instance) every layer is handed.
MAY_INCLUDE = {
    "base": {"base"},
    "runtime": {"base", "runtime", "engine", "top"},
    "engine": {"base", "engine", "runtime", "pool", "top"},
    "pool": {"base", "pool", "engine", "runtime", "top"},
    "server": {"base", "server", "pool", "engine", "runtime", "top"},
}
# engine -> pool: only the slot interface an engine implements and the
# template whose slots it prepares.
NARROW = {("engine", "pool"): {"pool.h", "tpl.h"}}
LOWER = {"base", "runtime", "engine", "pool"}
UPWARD_CALL = re.compile(r"\b(dbld_(?!stopping\b|t\b)[a-z_]+|sess_[a-z_]+)\s*\(")


def main():
    where = {}
    for layer in list(MAY_INCLUDE) + ["top"]:
        folder = DAEMON if layer == "top" else os.path.join(DAEMON, layer)
        for name in os.listdir(folder):
            if name.endswith(".h"):
                where[name] = layer
    bad = []
    for layer, allowed in MAY_INCLUDE.items():
        folder = os.path.join(DAEMON, layer)
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(folder, name)
            text = open(path, encoding="utf-8").read()
            for inc in re.findall(r'#include "([A-Za-z0-9_]+\.h)"', text):
                to = where.get(inc)
                if to is None or to == layer:
                    continue
                if to not in allowed or inc not in NARROW.get((layer, to), {inc}):
                    bad.append(f"{layer}/{name} includes {to}/{inc}")
            if layer in LOWER:
                code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
                for call in UPWARD_CALL.findall(code):
                    bad.append(f"{layer}/{name} calls {call}() (report upward through a callback)")
    for b in bad:
        print(f"layer violation: {b}")
    print(f"{'FAIL' if bad else 'ok'}: {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
