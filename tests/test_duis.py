"""DUIS messages from the DCC (docs/duis.md): import, refusal of every bad input with its reason,
the flag from both sources, conflicts and the drafted requests. In process, on a real SQLite
store, with messages signed as the DCC signs them (tests/duis_support.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from companion.config import Config
from companion.service.dcc_view import conflicts, rederive, site, write_requests
from companion.service.duis_import import DuisIntake, ImportSummary
from companion.service.ingest import Incoming, Ingestor
from companion.store.core import Store
from companion.store.smi import Inventory
from companion.wire.duis import load_certs

from .bridge_support import DEVICE_ID, MV, PUBLIC_KEY, companion, evidence, make_event
from .duis_support import NS, Dcc

MPAN = MV.MPAN
ESME, CHF = "00-1B-C5-0C-00-00-00-10", "00-1B-C5-0C-00-00-00-01"
T_VISIT = 1793491200  # 2026-11-01, the field visit


@pytest.fixture(scope="module")
def dcc() -> Dcc:
    return Dcc()


@pytest.fixture
def world(tmp_path, dcc):
    store = Store(tmp_path / "b.db")
    store.add_key(DEVICE_ID, bytes.fromhex(PUBLIC_KEY))
    cfg = Config(db=str(tmp_path / "b.db"), duis_certs=str(dcc.pem(tmp_path / "dcc.pem")),
                 duis_user_eui="90-B3-D5-1F-30-01-00-00", duis_dcc_eui="90-B3-D5-1F-30-00-00-02").check()
    return store, cfg


def take(world, *messages: bytes) -> ImportSummary:
    store, cfg = world
    summary = ImportSummary()
    intake = DuisIntake(Inventory(store), load_certs([cfg.duis_certs]))
    for i, m in enumerate(messages):
        intake.take(m, f"m{i}.xml", summary)
    rederive(store, cfg, summary.mpxns)
    return summary


def field(world, etype: str, ev: dict, counter: int, at: int = T_VISIT) -> None:
    store, cfg = world
    _, msg = make_event(etype, at, counter, ev=ev)
    out = Ingestor(store, cfg).handle_batch([Incoming(f"flagwise/events/{DEVICE_ID}", msg, at + 60)])[0]
    assert out.status == "stored", out


def commissioned_inventory(dcc: Dcc, **kw) -> bytes:
    return dcc.inventory([{"DeviceID": CHF, "DeviceType": "CHF", "DeviceStatus": "Commissioned"},
                          {"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": kw.get("status", "Commissioned"),
                           "DateCommissioned": "2026-10-01", "ImportMPxN": kw.get("mpxn", MPAN)}],
                         at=kw.get("at", "2026-11-20T10:00:00Z"))


# --- import ---------------------------------------------------------------------------------------
def test_an_inventory_is_stored_once_with_its_history_and_gives_the_flag(world, dcc):
    msg = commissioned_inventory(dcc)
    s = take(world, msg, msg)
    assert (s.stored, s.already, s.refused_total) == (1, 1, 0)
    store, cfg = world
    hist = Inventory(store).history(ESME)
    assert [(h.status, h.mpxns, h.chf) for h in hist] == [("Commissioned", (MPAN,), CHF)]
    assert time.strftime("%Y-%m-%d", time.gmtime(hist[0].since)) == "2026-10-01"  # DateCommissioned
    assert Inventory(store).message(hist[0].message_seq)[1] == msg  # verbatim: it can be verified again
    flag = store.flag(MPAN)
    assert flag.flag == "A" and flag.effective_from == "2026-10-01" and "DCC" in flag.reason


def bad_messages(dcc: Dcc) -> dict[str, tuple[bytes, str]]:
    good = commissioned_inventory(dcc)
    other = Dcc(cn="Z9", serial=99)
    eighteen = dcc.inventory([{"DeviceID": f"00-1B-C5-0C-00-00-01-{i:02X}", "DeviceType": "IHD"} for i in range(18)])
    # A signature over another element: valid over the ResponseMessage alone (Reference URI="#m"),
    # around a Header the attacker wrote.
    part = dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": "Decommissioned",
                           "ImportMPxN": MPAN}], sign=False)
    part = part.replace(b"<sr:ResponseMessage>", b'<sr:ResponseMessage Id="m">')
    wrapped = dcc.sign(part, reference="#m").replace(b"2026-11-20T10:00:00Z", b"2026-11-30T10:00:00Z")
    return {
        "xxe": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                b'<sr:Response xmlns:sr="' + NS.encode() + b'">&x;</sr:Response>', "dtd"),
        "billion laughs": (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                           b"<lolz>&lol2;</lolz>", "dtd"),
        "unsigned": (dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME"}], sign=False), "unsigned"),
        "tampered": (good.replace(b"2026-10-01", b"2026-09-01"), "bad_signature"),
        "wrapping": (wrapped, "bad_signature"),
        "unknown certificate": (other.inventory([{"DeviceID": ESME, "DeviceType": "ESME"}]), "unknown_certificate"),
        "wrong namespace": (good.replace(NS.encode(), b"http://example.com/not-duis"), "wrong_namespace"),
        "18 devices": (eighteen, "too_many_devices"),
        "bad DeviceID": (dcc.inventory([{"DeviceID": "00-1B-C5-0C-00-00-00", "DeviceType": "ESME"}]), "bad_device_id"),
        "future": (dcc.inventory([{"DeviceID": ESME, "DeviceType": "ESME"}], at="2099-01-01T00:00:00Z"), "future"),
        "not xml": (b"\x00\x01 not xml", "malformed_xml"),
        "too deep": (b"<a>" * 100 + b"</a>" * 100, "too_deep"),
    }


def test_refusals_are_kept_bounded_the_latest_first(world, monkeypatch):
    """A flood of bad DUIS messages (an insider's, or a broken adapter's) keeps the latest
    refusals only, as the handhelds' rejections are."""
    store, _ = world
    inv = Inventory(store)
    monkeypatch.setattr(Inventory, "REFUSALS_KEPT", 5)
    for batch in range(3):
        inv.refuse_many([(f"d{batch}-{i}", "flood", "malformed_xml", f"#{batch * 4 + i}", b"x" * 10, 10)
                         for i in range(4)])
    assert inv.counts()["refused"] == 5
    assert [r["detail"] for r in inv.refusals()] == ["#11", "#10", "#9", "#8", "#7"]
    assert inv.outcome("d2-3") == "refused malformed_xml" and inv.outcome("d0-0") is None


@pytest.mark.parametrize("case", ["xxe", "billion laughs", "unsigned", "tampered", "wrapping", "unknown certificate",
                                  "wrong namespace", "18 devices", "bad DeviceID", "future", "not xml", "too deep"])
def test_every_bad_message_is_refused_with_its_reason_and_nothing_is_stored(world, dcc, case):
    data, reason = bad_messages(dcc)[case]
    s = take(world, data, commissioned_inventory(dcc))  # the import goes on after it
    assert dict(s.refused) == {reason: 1}, s.refusals
    assert s.stored == 1
    store, _ = world
    assert Inventory(store).counts()["refused"] == 1
    assert [h.message_seq for h in Inventory(store).history(ESME)] == [1]


def test_a_signature_by_another_key_under_a_configured_name_does_not_verify(world, dcc):
    other = Dcc(cn="Z1", serial=dcc.serial)  # same issuer and serial, another key
    data = other.inventory([{"DeviceID": ESME, "DeviceType": "ESME"}])
    assert dict(take(world, data).refused) == {"bad_signature": 1}


def test_the_command_walks_folders_refuses_a_100_mb_file_unread_and_exits_1(tmp_path, dcc):
    db = tmp_path / "c.db"
    assert companion("db", "upgrade", "--db", str(db)).returncode == 0
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "inv.xml").write_bytes(commissioned_inventory(dcc))
    (folder / "alert.xml").write_bytes(dcc.alert(ESME, "MeterDecommissioningOrWithdrawal", MPAN))
    with open(folder / "huge.xml", "wb") as f:  # sparse: 100 MB on paper
        f.truncate(100 << 20)
    pem = dcc.pem(tmp_path / "dcc.pem")
    p = companion("duis", "import", str(folder), "--db", str(db), "--certs", str(pem))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "2 stored" in p.stdout and "1 refused (1 too_large)" in p.stdout and "huge.xml" in p.stdout
    again = companion("duis", "import", str(folder / "sub"), "--db", str(db), "--certs", str(pem))
    assert again.returncode == 0 and "1 already stored" in again.stdout
    none = companion("duis", "import", str(folder), "--db", str(db))
    assert none.returncode == 2 and "duis_certs" in none.stderr and "Traceback" not in none.stderr


# --- both sources ---------------------------------------------------------------------------------
def test_a_removal_the_dcc_never_heard_of_is_a_conflict_with_an_8_3_draft(world, dcc, tmp_path):
    field(world, "commission", evidence(), 1, T_VISIT - 86400 * 20)
    field(world, "removal", evidence(hub=False), 2, T_VISIT)
    take(world, commissioned_inventory(dcc, at="2026-10-02T10:00:00Z"))
    store, cfg = world
    assert store.flag(MPAN).flag == "N"  # the wall wins on a removal; the conflict is named
    found = conflicts(store, cfg)
    # The meter is to be decommissioned; the hub went with it, and its return is reported.
    assert sorted((c.cls, c.device_id, c.request) for c in found) == [
        ("smi_commissioned_but_removed", CHF, "8.14.4"), ("smi_commissioned_but_removed", ESME, "8.3")]
    assert "smi_commissioned_but_removed" in store.flag(MPAN).reason
    paths = write_requests(store, cfg, found, tmp_path / "req")
    again = write_requests(store, cfg, found, tmp_path / "req2")
    body = {p.name.split("-")[1]: p.read_text() for p in paths}
    assert "<sr:DecommissionDevice>" in body["8.3"] and ESME in body["8.3"]
    assert "<sr:CHFNoFaultReturn>" in body["8.14.4"] and "<sr:ServiceReference>8.14<" in body["8.14.4"]
    counters = sorted(int(p.read_text().split("</sr:RequestID>")[0].rsplit(":", 1)[1]) for p in paths + again)
    assert counters == [1, 2, 3, 4]  # never reused
    schema = _schema()
    if schema is not None:
        for p in paths:
            schema.validate(str(p))


def test_a_commissioned_meter_the_dcc_shows_installed_not_commissioned_is_i_with_a_conflict(world, dcc):
    field(world, "commission", evidence(), 1)
    take(world, commissioned_inventory(dcc, status="InstalledNotCommissioned"))
    store, cfg = world
    flag = store.flag(MPAN)
    assert flag.flag == "I" and "not in the DCC's inventory" in flag.reason
    assert {c.cls for c in conflicts(store, cfg)} == {"smi_not_commissioned_but_field_commissioned"}


def test_a_decommissioning_alert_with_no_field_visit_gives_n_from_the_dcc(world, dcc):
    take(world, commissioned_inventory(dcc))
    store, _ = world
    assert store.flag(MPAN).flag == "A"
    take(world, dcc.alert(ESME, "MeterDecommissioningOrWithdrawal", MPAN, at="2026-11-25T09:00:00Z"))
    flag = store.flag(MPAN)
    assert (flag.flag, flag.effective_from, flag.version) == ("N", "2026-11-25", 2)


def test_an_install_and_leave_past_90_days_is_overdue(world, dcc):
    field(world, "install_and_leave", evidence(wan=False), 1, T_VISIT - 100 * 86400)
    store, cfg = world
    found = conflicts(store, cfg, now=T_VISIT)
    assert [c.cls for c in found] == ["install_and_leave_overdue"]
    assert conflicts(store, cfg, now=T_VISIT - 20 * 86400) == []


def test_the_dcc_and_the_hub_tying_a_meter_to_different_points_is_a_mismatch_with_an_8_4_draft(world, dcc, tmp_path):
    field(world, "commission", evidence(), 1)
    other = "1312345678916" if MPAN != "1312345678916" else "1312345678907"
    take(world, commissioned_inventory(dcc, mpxn=other))
    store, cfg = world
    found = [c for c in conflicts(store, cfg) if c.cls == "mpxn_mismatch"]
    assert [(c.mpxn, c.device_id, c.request) for c in found] == [(MPAN, ESME, "8.4")]
    path = write_requests(store, cfg, found, tmp_path / "r")[0]
    assert f"<sr:ImportMPxN>{MPAN}</sr:ImportMPxN>" in path.read_text()
    schema = _schema()
    if schema is not None:
        schema.validate(str(path))


def test_no_inventory_keeps_the_field_only_flag(world):
    field(world, "commission", evidence(), 1)
    store, cfg = world
    combined = site(store, Inventory(store), cfg, MPAN)
    assert combined.sources == ("field",) and combined.flag.flag == "A" and combined.conflicts == ()


def _schema():
    """The DCC's DUIS 5.4 schema, read where it lies (never copied here): FLAGWISE_DUIS_SCHEMA, or
    the workplace's shared folder beside the checkout."""
    root = Path(__file__).resolve().parent.parent
    for d in (os.environ.get("FLAGWISE_DUIS_SCHEMA"), root.parent / "shared" / "duis", "/work/shared/duis"):
        if d and (Path(d) / "DUIS Schema V5.4.xsd").exists():
            import xmlschema

            return xmlschema.XMLSchema(str(Path(d) / "DUIS Schema V5.4.xsd"))
    return None


def test_every_drafted_request_is_valid_against_the_duis_schema(world, dcc, tmp_path):
    schema = _schema()
    if schema is None:
        pytest.skip("the DUIS schema folder is absent (set FLAGWISE_DUIS_SCHEMA)")
    from companion.wire.duis_request import draft

    for service, body in (("8.2", {"DeviceID": ESME}), ("8.3", {"DeviceID": ESME}),
                          ("8.4", {"DeviceID": CHF, "UpdateDeviceStatusCH": "Commissioned"}),
                          ("8.4", {"DeviceID": ESME, "UpdateDeviceStatusExceptCH": "Pending"}),
                          ("8.4", {"DeviceID": ESME, "ImportMPxN": MPAN}),
                          ("8.14.4", {"DeviceID": CHF, "UserRefID": "J" * 40, "AdditionalInformation": "x" * 300})):
        f = tmp_path / "r.xml"
        f.write_bytes(draft(service, body, "90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:18446744073709551615"))
        schema.validate(str(f))


def test_the_emulated_dccs_messages_are_valid_duis(dcc, tmp_path):
    """The test DCC speaks the schema, so the import is tested against the real shape."""
    schema = _schema()
    if schema is None:
        pytest.skip("the DUIS schema folder is absent (set FLAGWISE_DUIS_SCHEMA)")
    for data in (commissioned_inventory(dcc), dcc.alert(ESME, "MeterDecommissioningOrWithdrawal", MPAN),
                 dcc.alert(ESME, "DeviceSuspended")):
        f = tmp_path / "m.xml"
        f.write_bytes(data)
        schema.validate(str(f))


def test_which_conflict_gets_which_request_is_configuration(world, dcc, tmp_path):
    field(world, "commission", evidence(), 1, T_VISIT - 86400 * 20)
    field(world, "removal", evidence(hub=False), 2, T_VISIT)
    take(world, commissioned_inventory(dcc, at="2026-10-02T10:00:00Z"))
    store, cfg = world
    found = conflicts(store, cfg)
    cfg.set("duis_requests", {"smi_commissioned_but_removed": "8.2"})
    paths = write_requests(store, cfg, found, tmp_path / "read-first")
    assert sorted(p.name.split("-")[1] for p in paths) == ["8.2", "8.2"]  # a refresh first, for the meter and the hub
    assert all("<sr:ReadInventory>" in p.read_text() for p in paths)
    cfg.set("duis_requests", {"smi_commissioned_but_removed": "none"})
    assert write_requests(store, cfg, found, tmp_path / "none") == []
    with pytest.raises(Exception, match="8.2, 8.3, 8.4"):
        cfg.set("duis_requests", {"smi_commissioned_but_removed": "9.9"})
    cfg.set("duis_requests", {"no_such_class": "none"})
    with pytest.raises(Exception, match="no conflict class no_such_class"):
        write_requests(store, cfg, found, tmp_path / "bad")


def test_a_certificate_is_judged_at_the_messages_own_time(tmp_path):
    """An archived message signed while the DCC's certificate was valid still verifies after the
    certificate expired; a message dated after its expiry does not (and nothing crashes)."""
    import datetime as dt

    utc = dt.timezone.utc
    old = Dcc(valid=(dt.datetime(2024, 1, 1, tzinfo=utc), dt.datetime(2025, 1, 1, tzinfo=utc)))
    store = Store(tmp_path / "c.db")
    intake = DuisIntake(Inventory(store), load_certs([str(old.pem(tmp_path / "old.pem"))]))
    s = ImportSummary()
    device = [{"DeviceID": ESME, "DeviceType": "ESME", "DeviceStatus": "Commissioned", "ImportMPxN": MPAN}]
    intake.take(old.inventory(device, at="2024-06-01T10:00:00Z"), "archived.xml", s)
    intake.take(old.inventory(device, at="2026-06-01T10:00:00Z"), "late.xml", s)
    assert s.stored == 1 and dict(s.refused) == {"bad_signature": 1}, s.refusals
    assert "valid" in s.refusals[0][2]
