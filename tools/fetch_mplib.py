"""Fetch the micropython-lib modules the firmware needs into the board lib folder.

micropython-lib reaches PyPI as upip-format sdists (``micropython-umqtt.simple``
1.3.4): pip refuses them, so this unpacks them the way ``upip``/``mip`` would,
copying only the listed modules. Each archive is pinned by version and sha256
(tools/mplib.json) and cached, so a re-run is offline and fast.

Usage: python tools/fetch_mplib.py [--lib DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "tools" / "mplib.json"


class FetchError(Exception):
    pass


def _download(url: str, dest: Path, sha256: str) -> bytes:
    if dest.exists():
        data = dest.read_bytes()
        if hashlib.sha256(data).hexdigest() == sha256:
            return data
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except OSError as exc:
        raise FetchError(f"cannot download {url}: {exc}") from exc
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise FetchError(f"sha256 mismatch for {url}: expected {sha256}, got {got}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(dest)
    return data


def install(pkg: dict, lib: Path, cache: Path) -> list[Path]:
    name, version, sha256 = pkg["name"], pkg["version"], pkg["sha256"]
    data = _download(pkg["url"], cache / f"{name}-{version}.tar.gz", sha256)
    prefix = f"{name}-{version}/"
    written = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers() if m.isfile()}
        for module in pkg["modules"]:
            member = members.get(prefix + module)
            if member is None:
                raise FetchError(f"{name} {version}: archive has no {module}")
            content = tar.extractfile(member).read()
            dest = lib / module
            if not dest.exists() or dest.read_bytes() != content:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(dest.name + ".part")
                tmp.write_bytes(content)
                tmp.replace(dest)
            written.append(dest)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", type=Path, default=ROOT / "build" / "lib")
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "cache")
    args = ap.parse_args(argv)
    lock = json.loads(LOCK.read_text())
    try:
        for pkg in lock["packages"]:
            install(pkg, args.lib, args.cache)
    except FetchError as exc:
        print(f"fetch_mplib: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
