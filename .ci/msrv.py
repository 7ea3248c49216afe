"""The workspace's rust-version is a promise: no locked dependency may need a
newer Rust. Reads `cargo metadata --locked` on stdin."""

import json
import sys


def version(text):
    parts = [int(part) for part in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
msrv = max(version(p["rust_version"]) for p in meta["packages"] if p["id"] in members)
newer = [
    "{} {} needs {}".format(p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p.get("rust_version") and version(p["rust_version"]) > msrv
]
if newer:
    sys.exit("locked dependencies need a newer Rust than rust-version: " + ", ".join(newer))
print("rust-version", ".".join(map(str, msrv)), "covers every locked dependency")
