"""Benchmark: importing the DCC's inventory (docs/duis.md), measured in one run.

- Import: `companion duis import DIR` of N inventory records (8.2 responses of 17 devices, each
  signed as the DCC signs), in a process of its own: records/s and peak RSS (the kernel's
  getrusage of the child), against the floor, a bare parse of the same files with the same
  library and parser settings (lxml), also in a process of its own.
- Signature: verifying one message's signature (companion/wire/duis.py `verify`, signxml:
  exclusive c14n, digest, ECDSA) against a bare `cryptography` ECDSA-P256-SHA256 verify of a
  message of the same size, alternated in the same process.

The signed files are made once and kept (build/bench-duis/N/), since signing is not measured.

Usage: python tools/bench_duis.py [-n RECORDS] [--verify-rounds K]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

PER_MESSAGE = 17


def mpan(i: int) -> str:
    from companion.ids import mpan_check_digit

    first = f"{10 + i % 14:02d}{i:010d}"
    return first + str(mpan_check_digit(first))


def make(folder: Path, records: int) -> tuple[Path, bytes]:
    """N records as signed 8.2 responses; -> (folder, the DCC's certificate PEM)."""
    from cryptography.hazmat.primitives import serialization

    from hil.dcc import Dcc

    folder.mkdir(parents=True, exist_ok=True)
    pem = folder / "dcc.pem"
    key = folder / "dcc.key"
    if pem.exists() and key.exists():
        dcc = Dcc.__new__(Dcc)
        from cryptography import x509

        dcc.key = serialization.load_pem_private_key(key.read_bytes(), None)  # type: ignore[assignment]
        dcc.cert = x509.load_pem_x509_certificate(pem.read_bytes())
        dcc.issuer, dcc.serial, dcc._n = "CN=Z1, OU=07", dcc.cert.serial_number, 0
    else:
        dcc = Dcc()
        dcc.pem(pem)
        key.write_bytes(dcc.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    msgs = folder / "messages"
    msgs.mkdir(exist_ok=True)
    have = len(list(msgs.glob("*.xml")))
    want = (records + PER_MESSAGE - 1) // PER_MESSAGE
    for m in range(have, want):
        devices = []
        for k in range(PER_MESSAGE):
            i = m * PER_MESSAGE + k
            devices.append({"DeviceID": f"00-1B-C5-{(i >> 32) & 255:02X}-{(i >> 24) & 255:02X}-{(i >> 16) & 255:02X}-"
                                        f"{(i >> 8) & 255:02X}-{i & 255:02X}",
                            "DeviceType": "ESME", "DeviceStatus": "Commissioned", "ImportMPxN": mpan(i)})
        (msgs / f"{m:07d}.xml").write_bytes(dcc.inventory(devices, at="2026-11-20T10:00:00Z"))
        if m % 1000 == 999:
            print(f"  signed {m + 1} of {want} messages", file=sys.stderr)
    return msgs, pem.read_bytes()


def child(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stdout) of a command in its own process."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    out = p.stdout.read() if p.stdout else ""
    err = p.stderr.read() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise SystemExit(f"{cmd[:3]} failed: {err[-600:]}")
    return wall, usage.ru_maxrss / 1024, out


_PARSE = """
import sys
from pathlib import Path
from lxml import etree
parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
n = 0
for f in sorted(Path(sys.argv[1]).glob("*.xml")):
    root = etree.fromstring(f.read_bytes(), parser)
    n += len(root.findall(".//{http://www.dccinterface.co.uk/ServiceUserGateway}Device"))
print(n)
"""


def verify_vs_bare(folder: Path, pem: bytes, rounds: int) -> tuple[float, float]:
    """(ms per message for the DUIS signature check, ms for a bare ECDSA verify), alternated."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from companion.wire.duis import _parser, load_certs, verify
    from lxml import etree

    tmp = Path(tempfile.mkdtemp()) / "dcc.pem"
    tmp.write_bytes(pem)
    certs = load_certs([str(tmp)])
    files = sorted(folder.glob("*.xml"))[:rounds]
    datas = [f.read_bytes() for f in files]
    key = ec.generate_private_key(ec.SECP256R1())
    sigs = [key.sign(d, ec.ECDSA(hashes.SHA256())) for d in datas]
    pub = key.public_key()
    ours = bare = 0.0
    for d, s in zip(datas, sigs):
        root = etree.fromstring(d, _parser())  # the parse is the import's floor, not the signature's
        t = time.perf_counter()
        verify(root, certs)
        ours += time.perf_counter() - t
        t = time.perf_counter()
        pub.verify(s, d, ec.ECDSA(hashes.SHA256()))
        bare += time.perf_counter() - t
    return ours / len(datas) * 1000, bare / len(datas) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="inventory records (17 a message)")
    ap.add_argument("--verify-rounds", type=int, default=500)
    args = ap.parse_args()
    folder, pem = make(ROOT / "build" / "bench-duis" / str(args.n), args.n)
    files = len(list(folder.glob("*.xml")))
    records = files * PER_MESSAGE
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        subprocess.run([str(BIN / "companion"), "db", "upgrade", "--db", str(db)], check=True, capture_output=True)
        certs = Path(tmp) / "dcc.pem"
        certs.write_bytes(pem)
        floor_s, floor_rss, out = child([sys.executable, "-c", _PARSE, str(folder)])
        assert int(out.strip()) == records, out
        imp_s, imp_rss, out = child([str(BIN / "companion"), "duis", "import", str(folder), "--db", str(db),
                                     "--certs", str(certs)])
        assert f"{files} stored" in out, out
    ours_ms, bare_ms = verify_vs_bare(folder, pem, min(args.verify_rounds, files))
    print(f"DUIS import of {records:,} inventory records ({files:,} signed 8.2 responses of {PER_MESSAGE}), "
          "one run:")
    print(f"  companion duis import: {imp_s:8.1f} s  {records / imp_s:10,.0f} records/s  "
          f"peak RSS {imp_rss:7.0f} MiB")
    print(f"  bare lxml parse:       {floor_s:8.1f} s  {records / floor_s:10,.0f} records/s  "
          f"peak RSS {floor_rss:7.0f} MiB")
    print(f"  import / floor: {imp_s / floor_s:.1f}x the time, {imp_rss / floor_rss:.1f}x the memory")
    print(f"signature check per message: {ours_ms:.2f} ms (signxml: c14n, digest, ECDSA), bare cryptography "
          f"ECDSA verify {bare_ms:.3f} ms: {ours_ms / bare_ms:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
