"""`companion` command line. Sub-commands grow with the bridge (docs/cli.md)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from companion import __version__
from companion.errors import CompanionError, ServiceError, WireError
from companion.times import iso
from companion.wire.cose import MAX_MESSAGE, verify_event

if TYPE_CHECKING:
    from companion.config import Config
    from companion.store.core import Store


def _json_default(o: object) -> object:
    if isinstance(o, bytes):
        return o.hex()
    raise TypeError(type(o).__name__)


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = bytes.fromhex(args.key)
    except ValueError:
        print("companion verify: --key must be hex (65-byte SEC1 public key)", file=sys.stderr)
        return 2
    # Read no more than an oversize message needs to be told apart (hex doubles it).
    limit = 2 * (args.max_size or MAX_MESSAGE) + 16
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read(limit)
        else:
            with open(args.file, "rb") as f:
                data = f.read(limit)
    except OSError as exc:
        print(f"companion verify: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.hex:
        try:
            data = bytes.fromhex(data.decode("ascii").strip())
        except ValueError:
            print("companion verify: input is not hex", file=sys.stderr)
            return 2
    try:
        verified = verify_event(data, key, max_size=args.max_size)
    except WireError as exc:
        print(json.dumps({"ok": False, "reason": exc.reason, "error": str(exc)}))
        return 1
    except ValueError as exc:  # a malformed key
        print(f"companion verify: {exc}", file=sys.stderr)
        return 2
    out = {"ok": True, "kid": verified.sign1.kid.hex(), "event": asdict(verified.event)}
    print(json.dumps(out, default=_json_default, indent=2 if args.pretty else None))
    return 0


def _store(args: argparse.Namespace, create: bool = False) -> tuple[Config, Store]:
    """The configured store. Nothing makes a store but the bridge and `companion db upgrade`:
    a command on a mistyped path must not leave an empty companion.db behind, and no command
    but those two changes a store's schema."""
    from companion.config import ConfigError, load
    from companion.store.db import is_postgres, redact
    from companion.store.core import Store

    cfg = load(args.config, {"db": args.db})
    if not create and not is_postgres(cfg.db) and not Path(cfg.db_path).exists():
        raise ConfigError(f"no store at {cfg.db_path}: give --db (or db in --config) of an existing store; "
                          f"make one with `companion db upgrade --db {cfg.db_path}` or by starting the bridge")
    try:
        return cfg, Store(cfg.db, upgrade=create)
    except _db_errors() as exc:
        raise ConfigError(f"cannot open the database {redact(cfg.db)}: {_first_line(exc)}") from None


def _db_errors() -> tuple[type[BaseException], ...]:
    """What a database driver raises (sqlite3; psycopg when installed and used)."""
    import sqlite3

    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [""])[0][:300]


def cmd_bridge(args: argparse.Namespace) -> int:
    from companion.service.bridge import Bridge
    from companion.service.logs import setup_logging
    from companion.config import load

    http = None if args.http == "off" else args.http
    cfg = load(args.config, {"broker": args.broker, "db": args.db, "http": http, "out": args.out,
                             "listen": args.listen, "prefix": args.prefix, "client_id": args.client_id,
                             "share_group": args.share_group, "pki": args.pki, "name": args.name,
                             "insecure": True if args.insecure else None, "admin": args.admin})
    if cfg.insecure:
        print("companion bridge: WARNING: --insecure: no TLS; passwords and MQTT traffic travel in clear, "
              "readable and forgeable on the network path. Never use this with real data.", file=sys.stderr,
              flush=True)
    if args.http == "off":
        cfg.http = None
    setup_logging(cfg.log_level)
    try:
        from companion.surfaces.http import serve

        bridge = Bridge(cfg, serve_http=serve)
    except _db_errors() as exc:
        from companion.store.db import redact

        print(f"companion bridge: cannot open the database {redact(cfg.db)}: {_first_line(exc)}", file=sys.stderr)
        return 1
    try:
        bridge.start()
    except (ConnectionError, OSError, RuntimeError) as exc:  # broker unreachable, port taken
        print(f"companion bridge: {exc}", file=sys.stderr)
        bridge.stop()
        return 1
    print(f"broker: {bridge.state.broker_url} ({bridge.state.protocol})", flush=True)
    print(f"http: {bridge.state.http_url or 'off'}", flush=True)
    print(f"admin: {bridge.state.admin_url or 'off'}", flush=True)
    print(f"db: {bridge.store.db}  out: {cfg.out}  prefix: {cfg.prefix}", flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: bridge.stopping.set())
    bridge.run_forever()
    if bridge.state.fatal:
        print(f"companion bridge: {bridge.state.fatal}", file=sys.stderr)
        return 3
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from companion.store.core import RegistryError

    if args.action == "add":  # checked before the store is opened: a bad key touches nothing
        from companion.store.core import _device
        from companion.wire.cose import load_public_key

        try:
            key = bytes.fromhex(args.public_key)
            load_public_key(key)
            _device(args.device_id)
        except ValueError as exc:
            print(f"companion keys add: {exc if 'fromhex' not in str(exc) else 'PUBLIC_KEY_HEX must be hex'} "
                  "(the handheld's 65-byte SEC1 P-256 point, as tools/provision.py prints it)", file=sys.stderr)
            return 2
    _, store = _store(args)
    try:
        if args.action == "add":
            store.add_key(args.device_id, key)
            print(f"added {args.device_id}")
        elif args.action == "revoke":
            pki = _revocation_pki(args)  # before the store changes: a refusal leaves nothing half done
            store.revoke_key(args.device_id, at=args.at, hard=args.hard)
            print(f"revoked {args.device_id}" + (" (hard)" if args.hard else ""))
            _revoke_at_broker(pki, args.device_id, args.at)
        else:
            for k in store.keys():
                state = "active" if k.active else f"revoked {iso(k.revoked_at or 0.0)}" + (" hard" if k.hard else "")
                print(f"{k.device_id}  {k.public_key.hex()}  {state}")
    except (RegistryError, ValueError) as exc:
        print(f"companion keys {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def _revocation_pki(args: argparse.Namespace) -> Any:
    """The PKI a revocation reaches: --pki, or `pki` set in the configuration (file or
    FLAGWISE_PKI). Never ./pki by default: a revocation that silently misses the broker leaves
    the handheld able to connect. None with --no-pki."""
    from companion.config import ConfigError, load
    from companion.service.pki import Pki

    if args.no_pki:
        return None
    cfg = load(args.config, {"pki": getattr(args, "pki", None)})
    if not cfg.given("pki"):
        raise ConfigError("keys revoke: which PKI holds the handheld's certificate? Give --pki FOLDER (the bridge's "
                          "PKI, or `pki` in --config), or --no-pki if its certificate is at a broker this companion "
                          "does not manage")
    pki = Pki(cfg.pki, cfg.prefix)
    if not pki.exists:
        raise ConfigError(f"keys revoke: no PKI in {pki.root}: give the bridge's PKI folder, or --no-pki")
    return pki


def _revoke_at_broker(pki: Any, device_id: str, at: float | None) -> None:
    """A revoked handheld loses its broker identity too (CRL and ACL), if it has one in this
    PKI: now, or, for a revocation in the future, when its time comes (the running bridge
    does it, so the handheld keeps working until then)."""
    import time as _time

    from companion.service.pki import PkiError
    from companion.times import iso

    if pki is None:
        print("note: --no-pki: revoke the handheld's certificate at your broker as well")
        return
    try:
        if at is not None and at > _time.time():
            pki.schedule_revocation(device_id, at)
            print(f"the certificate of {device_id} will be revoked at the broker at {iso(at)}, by the running "
                  f"bridge (PKI {pki.root}); until then the handheld can still connect and deliver earlier events")
            return
        pki.revoke(device_id)
        print(f"certificate of {device_id} revoked at the broker (CRL and ACL in {pki.root})")
    except PkiError as exc:
        print(f"note: {exc}")


def cmd_pki(args: argparse.Namespace) -> int:
    from companion.config import load
    from companion.service.pki import Pki, mosquitto_conf

    cfg = load(args.config, {"pki": args.pki})
    pki = Pki(cfg.pki, cfg.prefix)
    if args.action not in ("init", "mosquitto-conf") and not pki.exists:  # the conf only names paths
        print(f"companion pki {args.action}: no PKI in {pki.root}: give --pki FOLDER (or `pki` in the "
              f"configuration), or make one with `companion pki init --pki {pki.root}`", file=sys.stderr)
        return 2
    if args.action == "init":
        names = tuple(args.broker_name or ("localhost", "127.0.0.1"))
        pki.init(names)
        print(f"CA, broker certificate ({', '.join(names)}), CRL and ACL in {pki.root}")
    elif args.action == "issue":
        crt, key = pki.issue(args.role, args.name)
        print(f"{args.role} {args.name}: {crt} {key}")
        if args.role == "bridge":
            print(f"signing key: {pki.signing_key_path(args.name)}")
    elif args.action == "handheld":
        try:
            raw = bytes.fromhex(args.public_key)
        except ValueError:
            print("companion pki handheld: PUBLIC_KEY_HEX must be hex (65-byte SEC1 point)", file=sys.stderr)
            return 2
        print(f"handheld {args.device_id}: {pki.issue_handheld(args.device_id, raw)}")
    elif args.action == "revoke":
        ident = pki.revoke(args.name)
        print(f"revoked {ident.role} {ident.name} (serial {ident.serial}): CRL and ACL rewritten; "
              "reload an external broker (SIGHUP)")
    elif args.action == "rollover":
        point = pki.new_signing_key(args.name, args.overlap)
        print(f"new signing key for {args.name}: {point.hex()}")
        print(f"the old key stays published for {args.overlap:g} days (its announced end is in "
              f"{pki.signing_registry}); give the handhelds the new key before then")
    elif args.action == "keys":
        print(json.dumps({"keys": pki.bridge_public_keys()}, indent=1))
    elif args.action == "mosquitto-conf":
        host, _, port = args.listen.rpartition(":")
        print(mosquitto_conf(pki, host or "0.0.0.0", int(port), persistence_dir=Path(args.persistence)))
    else:
        for i in pki.identities():
            print(f"{i.role:9} {i.name:28} serial {i.serial:x}" + ("  REVOKED" if i.revoked else "")
                  + (f"  earlier (revoked): {', '.join(f'{e:x}' for e in i.earlier)}" if i.earlier else ""))
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    from companion.store.core import RegistryError

    _, store = _store(args)
    try:
        if args.action == "add":
            print(store.add_token(args.name, args.role))
            print(f"{args.role} token for {args.name}: shown once, stored hashed; send it as "
                  "'Authorization: Bearer <token>'" + (" (it may only triage alerts: POST /v1/alerts/triage)"
                                                       if args.role == "dno" else ""), file=sys.stderr)
        elif args.action == "revoke":
            store.revoke_token(args.name)
            print(f"revoked token {args.name}")
        else:
            for name, created, revoked, role in store.tokens():
                print(f"{name}  {role}  created {int(created)}" + (f"  revoked {int(revoked)}" if revoked else ""))
    except RegistryError as exc:
        print(f"companion tokens {args.action}: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_flags_verify(args: argparse.Namespace) -> int:
    from companion.wire.signing import FlagVerifier, KeyRing, VersionRegressionError

    try:
        ring = KeyRing.from_file(args.keys)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"companion flags verify: cannot read bridge keys from {args.keys}: {exc}", file=sys.stderr)
        return 2
    verifier = FlagVerifier(ring)
    try:
        # Bounded, as the bridge bounds a message before it decodes it.
        if args.file == "-":
            data = sys.stdin.buffer.read(2 * MAX_MESSAGE)
        else:
            with open(args.file, "rb") as f:
                data = f.read(2 * MAX_MESSAGE)
    except OSError as exc:
        print(f"companion flags verify: {exc.strerror}: {args.file}", file=sys.stderr)
        return 2
    try:
        body = verifier.verify(data, args.topic)
        if args.last_version is not None and body["version"] <= args.last_version:
            raise VersionRegressionError(f"version {body['version']} of {body['mpxn']} is not newer "
                                         f"than {args.last_version}")
    except CompanionError as exc:
        print(json.dumps({"ok": False, "reason": exc.reason, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "flag": body}, indent=1 if args.pretty else None))
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from companion.surfaces.site import events_view, format_site, site_view

    cfg, store = _store(args)
    try:
        view = site_view(store, args.mpxn, cfg)
    except ValueError as exc:
        print(f"companion site: {exc}", file=sys.stderr)
        return 2
    if view is None:
        print(f"{args.mpxn}: nothing known (no event names it)")
        return 1
    events = events_view(store, args.mpxn)
    if args.json:
        print(json.dumps({**view, "events": events}, indent=1))
    else:
        print(format_site(view, events))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from companion.surfaces.replay import replay

    _, store = _store(args)
    n, diffs = replay(store)
    for d in diffs:
        what = [name for name, a, b in zip(("flag", "date", "deciding event", "reason", "override"), d.sent,
                                           d.derived) if a != b]
        print(f"{d.mpxn}: sent {d.sent[0] or 'none'} from {d.sent[1]} (event {(d.sent[2] or '-')[:8]}), derived "
              f"{d.derived[0] or 'none'} from {d.derived[1]} (event {(d.derived[2] or '-')[:8]}); differs in "
              f"{', '.join(what)}")
    print(f"replay: {n} meter points, {len(diffs)} differences")
    return 1 if diffs else 0


def cmd_db(args: argparse.Namespace) -> int:
    """The store's schema and backups (docs/operations.md)."""
    from companion.store import backup
    from companion.config import load
    from companion.store.db import LATEST, Database, StoreError, is_postgres

    cfg = load(args.config, {"db": args.db})
    if args.action != "upgrade" and not is_postgres(cfg.db) and args.action != "restore" \
            and not Path(cfg.db_path).exists():
        raise StoreError(f"no store at {cfg.db_path}: give --db (or db in --config)")
    db = Database(cfg.db)
    try:
        if args.action == "status":
            version, todo = db.version(), db.pending()
            print(f"store: {db}")
            print(f"schema version: {version} (this companion: {LATEST})")
            for n, what in todo:
                print(f"pending: {n} {what}")
            if todo:
                print("run `companion db upgrade` (the bridge does it at start unless db_upgrade = false)")
            return 1 if todo else 0
        if args.action == "upgrade":
            applied = db.upgrade()
            for n, what in applied:
                print(f"applied: {n} {what}")
            print(f"schema version: {db.version()} ({'up to date' if not applied else 'upgraded'})")
            return 0
        if args.action == "backup":
            backup.backup(db, Path(args.file))
            print(f"backed up {db} to {args.file}")
            return 0
        backup.restore(db, Path(args.file))
        print(f"restored {args.file} into {db} (schema version {db.version()}; "
              f"{'run companion db upgrade' if db.pending() else 'up to date'})")
        return 0
    except _db_errors() as exc:
        raise StoreError(f"{args.action}: {_first_line(exc)}") from None
    finally:
        db.close()


def cmd_flags_republish(args: argparse.Namespace) -> int:
    _, store = _store(args)
    n = store.republish_flags()
    print(f"{n} flags queued: the running bridge publishes each again, signed and retained, at its version")
    return 0


def _time_arg(text: str) -> float:
    from companion.times import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_reconcile(args: argparse.Namespace) -> int:
    from companion.reconcile.engine import CORRECTABLE, reconcile

    cfg, store = _store(args)
    correct = [c.strip() for c in (args.correct or "").split(",") if c.strip()]
    if correct == ["all"]:
        correct = list(CORRECTABLE)
    today = None
    if args.today:
        from datetime import date

        try:
            today = date.fromisoformat(args.today)
        except ValueError:
            print(f"companion reconcile: --today {args.today[:30]!r}: YYYY-MM-DD", file=sys.stderr)
            return 2

    out = Path(args.out) if args.out else Path(Path(args.extract).stem + "-reconciled")
    def file_number() -> int:  # correction file ids never repeat across runs (kept in the store)
        with store.tx() as db:
            return store.next_sequence(db, "correction_file")

    s = reconcile(Path(args.extract), store.evidence_arrow, out, config=cfg, correct=correct, today=today,
                  progress=sys.stderr.isatty() if args.progress is None else args.progress,
                  memory_limit=args.memory_limit, file_number=file_number, list_unverified=args.list_unverified)
    print(f"{s.rows:,} row{'' if s.rows == 1 else 's'}: {s.reconciled:,} reconciled, "
          f"{s.discrepancies:,} discrepancies, {s.unverified:,} with no evidence, {s.bad_rows:,} bad rows, "
          f"{s.duplicates:,} duplicates ({s.seconds:.1f} s)")
    for c, n in s.classes.items():
        if n:
            print(f"  {c:28} {n:,}")
    if s.files:
        print(f"  corrections: {', '.join(f'{k} {v:,}' for k, v in s.corrections.items())} in {len(s.files)} DTC files")
    listed = ", unverified.csv" if args.list_unverified else ""
    print(f"outputs in {out}: discrepancies.csv, discrepancies.parquet, bad_rows.csv{listed}, report.html, "
          "summary.json")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="SQLite file, or postgresql://USER:PASSWORD@HOST/DB (default companion.db, "
                                "or the config file's)")
    p.add_argument("--config", help="TOML configuration file (docs/bridge.md)")

def _add_bridge(sub: Any) -> None:
    b = sub.add_parser("bridge", help="run the bridge service")
    _common(b)
    b.add_argument("--broker", help="mqtts://HOST:PORT of your broker (default: the bridge runs its own "
                                    "mosquitto, secured as shipped)")
    b.add_argument("--listen",
                   help="HOST:PORT for the bridge's own broker (default 127.0.0.1:8883; port 0: a free one)")
    b.add_argument("--http", help="HOST:PORT for the read API, or off (default 127.0.0.1:8080)")
    b.add_argument("--admin", help="HOST:PORT for /healthz, /readyz and /metrics alone, or off "
                                   "(default 127.0.0.1:8081; port 0: a free one)")
    b.add_argument("--out", help="folder for DTC flow files (default out)")
    b.add_argument("--prefix", help="MQTT topic prefix (default flagwise)")
    b.add_argument("--client-id", help="MQTT client id (one per replica)")
    b.add_argument("--share-group", help="subscribe as $share/GROUP/... (several replicas)")
    b.add_argument("--pki", help="folder of the CA, identities and signing keys (default pki)")
    b.add_argument("--name", help="this bridge's identity (default bridge)")
    b.add_argument("--insecure", action="store_true",
                   help="INSECURE: plain TCP, identities by password in clear, for a throwaway trial only")
    b.set_defaults(func=cmd_bridge)


def _add_pki(sub: Any) -> None:
    pk = sub.add_parser("pki", help="identities at the broker: CA, certificates, revocation (docs/security.md)")
    pks = pk.add_subparsers(dest="action", required=True)
    pi = pks.add_parser("init", help="make the CA, the broker certificate, the CRL and the ACL")
    pi.add_argument("--broker-name", action="append", help="DNS name or IP of the broker (repeatable)")
    pis = pks.add_parser("issue", help="issue a bridge, consumer, auditor or dcc-adaptor identity")
    pis.add_argument("role", choices=("bridge", "consumer", "auditor", "dcc-adaptor"))
    pis.add_argument("name")
    ph = pks.add_parser("handheld", help="issue a handheld's certificate for its own public key")
    ph.add_argument("device_id")
    ph.add_argument("public_key", metavar="PUBLIC_KEY_HEX")
    prv = pks.add_parser("revoke", help="revoke an identity (CRL and ACL)")
    prv.add_argument("name")
    pro = pks.add_parser("rollover", help="a new signing key for a bridge; the old one stays published")
    pro.add_argument("name")
    pro.add_argument("--overlap", type=float, default=30.0,
                     help="days the old key stays published, its announced end (default %(default)s)")
    pkk = pks.add_parser("keys", help="print the bridge public keys (as GET /v1/keys)")
    pmc = pks.add_parser("mosquitto-conf", help="print the broker configuration for this PKI")
    pmc.add_argument("--listen", default="0.0.0.0:8883", help="HOST:PORT (default %(default)s)")
    pmc.add_argument("--persistence", default="/var/lib/mosquitto", help="persistence folder")
    pkl = pks.add_parser("list", help="list issued identities")
    for p in (pi, pis, ph, prv, pro, pkk, pmc, pkl):
        p.add_argument("--pki", help="PKI folder (default pki)")
        p.add_argument("--config", help="TOML configuration file (docs/bridge.md)")
    pk.set_defaults(func=cmd_pki)


def _add_tokens_and_flags(sub: Any) -> None:
    t = sub.add_parser("tokens", help="bearer tokens for the read API")
    ts = t.add_subparsers(dest="action", required=True)
    ta = ts.add_parser("add", help="make a token (printed once)")
    ta.add_argument("name")
    ta.add_argument("--role", choices=("read", "dno"), default="read",
                    help="read: the read API and the console (default); dno: alert triage only")
    tr = ts.add_parser("revoke", help="revoke a token")
    tr.add_argument("name")
    tl = ts.add_parser("list", help="list tokens")
    for p in (ta, tr, tl):
        _common(p)
    t.set_defaults(func=cmd_tokens)

    fl = sub.add_parser("flags", help="flag updates, for consumers")
    fls = fl.add_subparsers(dest="action", required=True)
    fv = fls.add_parser("verify", help="verify one signed flag update (<prefix>/flags/<mpxn> message)")
    fv.add_argument("file", help="message file, or - for standard input")
    fv.add_argument("--keys", required=True, help="bridge keys: the JSON of GET /v1/keys, or hex keys a line")
    fv.add_argument("--topic", help="the topic it came on (checked against its meter point)")
    fv.add_argument("--last-version", type=int, help="the last version you accepted: older or equal is refused")
    fv.add_argument("--pretty", action="store_true")
    fv.set_defaults(func=cmd_flags_verify)
    fr = fls.add_parser("republish", help="queue every meter point's current flag for publishing again "
                                          "(retained flags lost by the broker)")
    _common(fr)
    fr.set_defaults(func=cmd_flags_republish)


def _add_db_and_keys(sub: Any) -> None:
    d = sub.add_parser("db", help="the store: schema version, upgrade, backup and restore (docs/operations.md)")
    ds = d.add_subparsers(dest="action", required=True)
    ds.add_parser("status", help="schema version, and the migrations still to apply (exit 1 if any)")
    ds.add_parser("upgrade", help="apply the pending migrations (a new store is made)")
    dbk = ds.add_parser("backup", help="a consistent copy while the bridge runs (SQLite backup API; pg_dump)")
    dbk.add_argument("file", help="the backup file to make (never overwritten)")
    drs = ds.add_parser("restore", help="restore a backup into a new store (a missing file, or an empty database)")
    drs.add_argument("file", help="a file made by `companion db backup`")
    for p in ds.choices.values():
        _common(p)
    d.set_defaults(func=cmd_db)

    k = sub.add_parser("keys", help="the device key registry")
    ksub = k.add_subparsers(dest="action", required=True)
    ka = ksub.add_parser("add", help="register a handheld's public key")
    ka.add_argument("device_id")
    ka.add_argument("public_key", metavar="PUBLIC_KEY_HEX")
    kr = ksub.add_parser("revoke", help="revoke a handheld's key")
    kr.add_argument("device_id")
    kr.add_argument("--at", type=_time_arg,
                    help="revocation time: ISO 8601 (2026-11-27T10:00:00Z) or seconds since the epoch (default now)")
    kr.add_argument("--hard", action="store_true", help="reject every event, even those made before --at")
    kl = ksub.add_parser("list", help="list registered keys")
    for p in (ka, kr, kl):
        _common(p)
    kr.add_argument("--pki", help="PKI folder whose CRL and ACL the revocation reaches (or `pki` in --config)")
    kr.add_argument("--no-pki", action="store_true",
                    help="the handheld's certificate is at a broker this companion does not manage: revoke it there")
    k.set_defaults(func=cmd_keys)


def _add_reads(sub: Any) -> None:
    s = sub.add_parser("site", help="what is at this meter point, and why")
    _common(s)
    s.add_argument("mpxn")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_site)

    r = sub.add_parser("replay", help="re-derive every flag from stored events; report differences")
    _common(r)
    r.set_defaults(func=cmd_replay)

    rc = sub.add_parser("reconcile", help="hold a registration extract against the evidence: discrepancies, "
                                          "corrections, a report (docs/reconcile.md)")
    _common(rc)
    rc.add_argument("extract", help="CSV or Parquet: mpxn,flag,effective_from (other columns kept through)")
    rc.add_argument("--out", help="a new folder for the outputs (default: EXTRACT's name + -reconciled)")
    rc.add_argument("--correct", metavar="CLASS,...",
                    help="write correction DTC files for these classes ('all': every class that can be corrected)")
    rc.add_argument("--today", help="the day ages are counted to (YYYY-MM-DD; default today, UTC)")
    rc.add_argument("--memory-limit", default="1GB", help="the engine's memory limit; it spills to disk past it "
                                                          "(default %(default)s)")
    rc.add_argument("--list-unverified", action="store_true",
                    help="also list the meter points with no evidence, in unverified.csv (they are counted "
                         "either way; they are not discrepancies)")
    rc.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="a progress bar (default: when stderr is a terminal)")
    rc.set_defaults(func=cmd_reconcile)

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="companion", description="Back-office bridge for handheld events.")
    ap.add_argument("--version", action="version", version=f"companion {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="decode and verify one event message (COSE_Sign1)")
    v.add_argument("file", help="message file, or - for standard input")
    v.add_argument("--key", required=True, help="device public key, hex (65-byte SEC1)")
    v.add_argument("--hex", action="store_true", help="the input is hex text, not raw bytes")
    v.add_argument("--max-size", type=int, default=MAX_MESSAGE, help="bytes (default %(default)s)")
    v.add_argument("--pretty", action="store_true", help="indent the JSON output")
    v.set_defaults(func=cmd_verify)

    _add_bridge(sub)
    _add_pki(sub)
    _add_tokens_and_flags(sub)
    _add_db_and_keys(sub)
    _add_reads(sub)
    from companion.surfaces.cli_dcc import add_parsers

    add_parsers(sub, _common)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except (CompanionError, ServiceError) as exc:
        print(f"companion: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`companion site X | head`): not an error of ours. Point
        # stdout at /dev/null so that the interpreter's final flush does not raise again.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
