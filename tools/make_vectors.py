"""Generate tests/vectors/*.json from independent CPython implementations.

Nothing here uses the firmware or the companion: payloads are encoded with cbor2
(integer keys 0..23 only, where cbor2's canonical order equals RFC 8949 §4.2.1),
signatures come from `cryptography`'s deterministic ECDSA (RFC 6979). Both the
firmware (under micropython) and the companion must reproduce or accept these bytes.

Usage: python tools/make_vectors.py   (rewrites tests/vectors/; output is deterministic)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors"

# RFC 6979 appendix A.2.5 (P-256): the private key, its public key, and the
# SHA-256 signatures of "sample" and "test".
RFC6979_X = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"
RFC6979_UX = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
RFC6979_UY = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
RFC6979_SHA256 = [
    {"message": "sample",
     "k": "A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60",
     "r": "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
     "s": "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"},
    {"message": "test",
     "k": "D16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0",
     "r": "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
     "s": "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"},
]

# Handheld key of the event vectors (a fixed test key, never used in production).
DEVICE_KEY = "6B3F1B2C56B0C1C8B5A4E3D2F1A0918273645546372819A0B1C2D3E4F5061728"
DEVICE_ID = "70-B3-D5-F1-00-00-00-01"

# RFC 8949 Appendix A: (hex, value, deterministic). Values are in the JSON form
# read by tests/vectors.py: {"$bytes": hex}, {"$tag": [n, v]}, {"$map": [[k, v]...]},
# {"$float": "inf"|"nan"|"-inf"}.
CBOR_GOOD = [
    ("00", 0, True), ("01", 1, True), ("0a", 10, True), ("17", 23, True), ("1818", 24, True),
    ("1819", 25, True), ("1864", 100, True), ("1903e8", 1000, True), ("1a000f4240", 1000000, True),
    ("1b000000e8d4a51000", 1000000000000, True), ("1bffffffffffffffff", 18446744073709551615, True),
    ("c249010000000000000000", 18446744073709551616, True),
    ("3bffffffffffffffff", -18446744073709551616, True),
    ("c349010000000000000000", -18446744073709551617, True),
    ("20", -1, True), ("29", -10, True), ("3863", -100, True), ("3903e7", -1000, True),
    ("f90000", 0.0, False), ("f98000", -0.0, False), ("f93c00", 1.0, False),
    ("fb3ff199999999999a", 1.1, False), ("f93e00", 1.5, False), ("f97bff", 65504.0, False),
    ("fa47c35000", 100000.0, False), ("fa7f7fffff", 3.4028234663852886e38, False),
    ("fb7e37e43c8800759c", 1.0e300, False), ("f90001", 5.960464477539063e-8, False),
    ("f90400", 0.00006103515625, False), ("f9c400", -4.0, False),
    ("fbc010666666666666", -4.1, False),
    ("f97c00", {"$float": "inf"}, False), ("f97e00", {"$float": "nan"}, False),
    ("f9fc00", {"$float": "-inf"}, False), ("fa7f800000", {"$float": "inf"}, False),
    ("fb7ff0000000000000", {"$float": "inf"}, False),
    ("f4", False, True), ("f5", True, True), ("f6", None, True),
    ("c074323031332d30332d32315432303a30343a30305a", {"$tag": [0, "2013-03-21T20:04:00Z"]}, True),
    ("c11a514b67b0", {"$tag": [1, 1363896240]}, True),
    ("d74401020304", {"$tag": [23, {"$bytes": "01020304"}]}, True),
    ("d818456449455446", {"$tag": [24, {"$bytes": "6449455446"}]}, True),
    ("40", {"$bytes": ""}, True), ("4401020304", {"$bytes": "01020304"}, True),
    ("60", "", True), ("6161", "a", True), ("6449455446", "IETF", True),
    ("62225c", "\"\\", True), ("62c3bc", "\u00fc", True), ("63e6b0b4", "\u6c34", True),
    ("64f0908591", "\U00010151", True),
    ("80", [], True), ("83010203", [1, 2, 3], True), ("8301820203820405", [1, [2, 3], [4, 5]], True),
    ("98190102030405060708090a0b0c0d0e0f101112131415161718181819", list(range(1, 26)), True),
    ("a0", {"$map": []}, True), ("a201020304", {"$map": [[1, 2], [3, 4]]}, True),
    ("a26161016162820203", {"$map": [["a", 1], ["b", [2, 3]]]}, True),
    ("826161a161626163", ["a", {"$map": [["b", "c"]]}], True),
    ("a56161614161626142616361436164614461656145",
     {"$map": [["a", "A"], ["b", "B"], ["c", "C"], ["d", "D"], ["e", "E"]]}, True),
    ("5f42010243030405ff", {"$bytes": "0102030405"}, False),
    ("7f657374726561646d696e67ff", "streaming", False),
    ("9fff", [], False), ("9f018202039f0405ffff", [1, [2, 3], [4, 5]], False),
    ("9f01820203820405ff", [1, [2, 3], [4, 5]], False), ("83018202039f0405ff", [1, [2, 3], [4, 5]], False),
    ("83019f0203ff820405", [1, [2, 3], [4, 5]], False),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", list(range(1, 26)), False),
    ("bf61610161629f0203ffff", {"$map": [["a", 1], ["b", [2, 3]]]}, False),
    ("826161bf61626163ff", ["a", {"$map": [["b", "c"]]}], False),
    ("bf6346756ef563416d7421ff", {"$map": [["Fun", True], ["Amt", -2]]}, False),
    # Not shortest form: decoders accept, deterministic encoders never produce.
    ("1800", 0, False), ("190017", 23, False), ("1a00000001", 1, False),
    # §4.2.1 order is bytewise on the encoded key: 10 < 100 < -1 < h'01' < "z" < "aa" < false.
    ("a70a00186401200241010361 7a04626161 05f406".replace(" ", ""),
     {"$map": [[10, 0], [100, 1], [-1, 2], [{"$bytes": "01"}, 3], ["z", 4], ["aa", 5], [False, 6]]}, True),
    # Bytewise order puts 256 (190100) before "b" (6162); RFC 7049 length-first would not.
    ("a3181800190100016162 02".replace(" ", ""), {"$map": [[24, 0], [256, 1], ["b", 2]]}, True),
]

CBOR_BAD = [
    ("", "empty input"), ("18", "truncated argument"), ("1901", "truncated argument"),
    ("1c", "reserved additional information 28"), ("1d", "reserved additional information 29"),
    ("1e", "reserved additional information 30"), ("1f", "indefinite-length integer"),
    ("3f", "indefinite-length negative integer"), ("ff", "break outside indefinite item"),
    ("41", "truncated byte string"), ("62c3", "truncated text string"),
    ("62c328", "invalid UTF-8"), ("81", "truncated array"), ("a1", "truncated map"),
    ("a101", "map missing a value"), ("9f01", "unterminated indefinite array"),
    ("5f4101", "unterminated indefinite byte string"),
    ("5f6161ff", "text chunk inside a byte string"), ("5f5f4101ffff", "nested indefinite chunk"),
    ("a2010001 00".replace(" ", ""), "duplicate map key"),
    ("a2616100616100", "duplicate text map key"), ("0000", "trailing bytes"),
    ("9b0000000100000000", "array length beyond input"),
    ("dbffffffffffffffff", "tag with no content"),
    ("c2a0", "bignum tag on a non byte string"),
    ("8181818181818181818181818181818181818101", "nested deeper than the limit (16)"),
    ("fe", "reserved simple value"),
]


def sign(private_hex: str, data: bytes) -> bytes:
    key = ec.derive_private_key(int(private_hex, 16), ec.SECP256R1())
    der = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def public_hex(private_hex: str) -> str:
    key = ec.derive_private_key(int(private_hex, 16), ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex()


def ecdsa_vectors() -> dict:
    extra = []
    for i, (priv, msg) in enumerate([
        ("0000000000000000000000000000000000000000000000000000000000000001", b""),
        ("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632550", b"\x00" * 100),
        (DEVICE_KEY, bytes(range(256))),
        ("00000000000000000000000000000000000000000000000000000000DEADBEEF", b"abc"),
    ]):
        extra.append({"private_key": priv, "public_key": public_hex(priv),
                      "message_hex": msg.hex(), "signature": sign(priv, msg).hex()})
    pub = public_hex(RFC6979_X)
    assert pub == "04" + (RFC6979_UX + RFC6979_UY).lower(), "RFC 6979 A.2.5 public key"
    rfc = []
    for v in RFC6979_SHA256:
        sig = sign(RFC6979_X, v["message"].encode())
        assert sig.hex() == (v["r"] + v["s"]).lower(), "cryptography disagrees with RFC 6979"
        rfc.append({"message_hex": v["message"].encode().hex(), "signature": (v["r"] + v["s"]).lower()})
    return {
        "comment": "ECDSA P-256/SHA-256, deterministic nonces (RFC 6979). rfc6979 = appendix A.2.5; "
                   "extra = signatures by the cryptography library with deterministic_signing.",
        "rfc6979": {"private_key": RFC6979_X.lower(), "public_key": pub, "cases": rfc},
        "extra": extra,
    }


# --- events --------------------------------------------------------------------
# Named input (what agent.event.build takes) -> wire map (docs/wire.md), by hand.
HUB_KEYS = ["chf", "gpf", "generation", "version", "firmware", "dcc"]
WAN_KEYS = ["connected", "signal"]
DEVICE_KEYS = ["eui", "type", "status", "mpxn", "serial", "smets", "mode", "firmware", "answered"]
EUI_FIELDS = {"chf", "gpf", "eui"}


def _eui_wire(text: str) -> bytes | str:
    # 8 bytes on the wire; a malformed one (bad-input vectors) keeps whatever shape it has.
    try:
        return bytes.fromhex(text.replace("-", ""))
    except ValueError:
        return text


def _wire_sub(names: list[str], src: dict) -> dict:
    out = {}
    for key, name in enumerate(names):
        if src.get(name) is not None:
            v = src[name]
            out[key] = _eui_wire(v) if name in EUI_FIELDS else v
    return out


def to_wire(ev: dict, version: int = 2) -> dict:
    e = ev["evidence"]
    m = {
        0: version, 1: bytes.fromhex(ev["id"]["$bytes"]), 2: ev["type"], 3: ev.get("mpans", []),
        4: ev.get("mprns", []), 5: ev["job"], 6: ev["installer"], 7: ev["time"],
        8: ev["counter"], 9: ev.get("firmware"),
        10: {0: e["read_time"],
             1: None if e["hub"] is None else _wire_sub(HUB_KEYS, e["hub"]),
             2: None if e["wan"] is None else _wire_sub(WAN_KEYS, e["wan"]),
             3: [_wire_sub(DEVICE_KEYS, d) for d in e["devices"]]},
    }
    if e.get("hub_time") is not None:
        m[10][4] = e["hub_time"]
    if m[9] is None:
        del m[9]
    if ev.get("override"):
        m[11] = {0: ev["override"]["reason"], 1: ev["override"]["checks"]}
    return m


def protected(kid: bytes) -> bytes:
    return cbor2.dumps({1: -7, 4: kid}, canonical=True)


def sig_structure(prot: bytes, payload: bytes) -> bytes:
    return cbor2.dumps(["Signature1", prot, b"", payload])


def sign1(payload: bytes, kid: bytes, key: str = DEVICE_KEY, prot: bytes | None = None) -> dict:
    prot = protected(kid) if prot is None else prot
    tbs = sig_structure(prot, payload)
    sig = sign(key, tbs)
    msg = cbor2.dumps(cbor2.CBORTag(18, [prot, {}, payload, sig]))
    return {"protected": prot.hex(), "sig_structure": tbs.hex(), "signature": sig.hex(), "message": msg.hex()}


def _dev(eui, typ, status=None, mpxn=None, **kw):
    d = {"eui": eui, "type": typ}
    if status:
        d["status"] = status
    if mpxn:
        d["mpxn"] = mpxn
    d.update(kw)
    return d


MPAN = "1312345678907"
MPAN2 = "2000012345670"  # check digit computed by mpan_check below
MPRN = "1234567890"
HUB = {"chf": "00-1B-C5-0C-00-00-00-01", "gpf": "00-1B-C5-0C-00-00-00-02", "generation": "SMETS2",
       "version": "CHTS 1.0", "firmware": "3.2.1", "dcc": True}


def mpan_check(first12: str) -> str:
    w = (3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43)
    return first12 + str(sum(int(d) * x for d, x in zip(first12, w)) % 11 % 10)


def base_event(**kw) -> dict:
    ev = {
        "id": {"$bytes": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, "type": "commission",
        "mpans": [MPAN], "mprns": [], "job": "WO-2026-000123", "installer": "INST-0042",
        "time": 1795860000, "counter": 7, "firmware": "0.1.0",
        "evidence": {"read_time": 1795859990, "hub_time": 1795859988, "hub": dict(HUB),
                     "wan": {"connected": True, "signal": -71},
                     "devices": [_dev("00-1B-C5-0C-00-00-00-10", "ESME", "Commissioned", MPAN,
                                      serial="E24Z000123", smets="SMETS2 v5.0", mode="credit",
                                      firmware="1.4.0", answered=True)]},
    }
    ev.update(kw)
    return ev


def good_events() -> list[dict]:
    mpan2 = mpan_check("200001234567")
    dual = base_event(
        id={"$bytes": "00000000000000000000000000000002"}, type="install", mpans=[MPAN], mprns=[MPRN],
        counter=8)
    dual["evidence"]["devices"] = [
        _dev("00-1B-C5-0C-00-00-00-10", "ESME", "InstalledNotCommissioned", MPAN, answered=True),
        _dev("00-1B-C5-0C-00-00-00-11", "GSME", "InstalledNotCommissioned", MPRN, answered=False),
        _dev("00-1B-C5-0C-00-00-00-12", "IHD", answered=True),
        _dev("00-1B-C5-0C-00-00-00-13", "PPMID", "Whitelisted"),
    ]
    leave = base_event(id={"$bytes": "00000000000000000000000000000003"}, type="install_and_leave",
                       counter=9)
    leave["evidence"]["wan"] = {"connected": False}
    leave["evidence"]["devices"][0]["status"] = "InstalledNotCommissioned"
    removal = base_event(id={"$bytes": "00000000000000000000000000000004"}, type="removal",
                         mpans=[mpan2], counter=10)
    removal["evidence"] = {"read_time": 1795859990, "hub": None, "wan": None, "devices": []}
    override = base_event(id={"$bytes": "00000000000000000000000000000005"}, counter=11,
                          override={"reason": "Hub shows WAN down; DCC confirmed by phone",
                                    "checks": ["wan_down"]})
    override["evidence"]["wan"] = {"connected": False}
    smets1 = base_event(id={"$bytes": "00000000000000000000000000000006"}, counter=2**40)
    smets1["evidence"]["hub"] = {"chf": "00-12-4B-00-00-00-00-01", "generation": "SMETS1", "dcc": False}
    smets1["evidence"].pop("hub_time")  # a hub that keeps no DCC time gives none
    ahead = base_event(id={"$bytes": "00000000000000000000000000000007"}, counter=12)
    ahead["evidence"]["read_time"] += 2 * 86400  # handheld clock two days fast; the hub's is right
    return [("commission_electricity", base_event()), ("install_dual_fuel", dual),
            ("install_and_leave", leave), ("removal_no_hub", removal),
            ("commission_with_override", override), ("smets1_not_enrolled", smets1),
            ("handheld_clock_ahead_of_hub", ahead)]


def v1_events() -> list[dict]:
    """Schema v1 (before the hub clock): no longer written by the handheld, still accepted."""
    ev = base_event(id={"$bytes": "00000000000000000000000000000101"})
    ev["evidence"].pop("hub_time")
    return [("commission_electricity_v1", ev)]


def event_vectors() -> dict:
    kid = bytes.fromhex(DEVICE_ID.replace("-", ""))
    cases = []
    for name, ev in good_events():
        payload = cbor2.dumps(to_wire(ev), canonical=True)
        cases.append({"name": name, "input": ev, "payload": payload.hex(), **sign1(payload, kid)})
    v1 = []
    for name, ev in v1_events():
        payload = cbor2.dumps(to_wire(ev, 1), canonical=True)
        v1.append({"name": name, "input": ev, "payload": payload.hex(), **sign1(payload, kid)})
    return {
        "comment": "Good events: the firmware's agent.event.build(input) must equal payload and "
                   "agent.cose.sign1(payload, private_key, kid) must equal message; the companion "
                   "must verify message and decode input back. v1_cases: schema version 1, which "
                   "the companion still accepts and the firmware no longer writes.",
        "private_key": DEVICE_KEY.lower(), "public_key": public_hex(DEVICE_KEY),
        "kid": kid.hex(), "device_id": DEVICE_ID, "cases": cases, "v1_cases": v1,
    }


def _mutate(path: list, value) -> dict:
    ev = copy.deepcopy(base_event())
    target = ev
    for p in path[:-1]:
        target = target[p]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return ev


_DELETE = object()

# Builder inputs that both sides refuse: the firmware's builder (error names the field)
# and the companion (the same content encoded and validly signed: error reason).
BAD_INPUTS = [
    ("mpan_check_digit", ["mpans"], ["1312345678906"], "mpans[0]", "invalid_mpxn"),
    ("mpan_too_short", ["mpans"], ["131234567890"], "mpans[0]", "invalid_mpxn"),
    ("mpan_not_digits", ["mpans"], ["13123456789O7"], "mpans[0]", "invalid_mpxn"),
    ("mprn_too_short", ["mprns"], ["12345"], "mprns[0]", "invalid_mpxn"),
    ("mprn_too_long", ["mprns"], ["12345678901"], "mprns[0]", "invalid_mpxn"),
    ("no_meter_point", ["mpans"], [], "mpans/mprns", "invalid_mpxn"),
    ("repeated_mpan", ["mpans"], [MPAN, MPAN], "mpans[1]", "invalid_mpxn"),
    ("unknown_type", ["type"], "exchange", "type", "unknown_event_type"),
    ("bad_chf_eui", ["evidence", "hub", "chf"], "00-1B-C5-0C-00-00-00", "evidence.hub.chf",
     "invalid_device_id"),
    ("bad_device_eui", ["evidence", "devices", 0, "eui"], "00:1B:C5:0C:00:00:00:10",
     "evidence.devices[0].eui", "invalid_device_id"),
    ("bad_device_mpxn", ["evidence", "devices", 0, "mpxn"], "1312345678900",
     "evidence.devices[0].mpxn", "invalid_mpxn"),
    ("hub_time_negative", ["evidence", "hub_time"], -5, "evidence.hub_time", "schema"),
    ("hub_time_text", ["evidence", "hub_time"], "1795859988", "evidence.hub_time", "schema"),
    ("unknown_status", ["evidence", "devices", 0, "status"], "Installed",
     "evidence.devices[0].status", "schema"),
    ("unknown_device_type", ["evidence", "devices", 0, "type"], "WATER",
     "evidence.devices[0].type", "schema"),
    ("job_too_long", ["job"], "J" * 41, "job", "schema"),
    ("empty_installer", ["installer"], "", "installer", "schema"),
    ("missing_firmware", ["firmware"], _DELETE, "firmware", "schema"),
]


def bad_vectors() -> dict:
    kid = bytes.fromhex(DEVICE_ID.replace("-", ""))
    inputs = []
    for name, path, value, field, reason in BAD_INPUTS:
        ev = _mutate(path, value)
        payload = cbor2.dumps(to_wire(ev), canonical=True)
        inputs.append({"name": name, "input": ev, "field": field, "reason": reason,
                       "message": sign1(payload, kid)["message"]})

    good_payload = cbor2.dumps(to_wire(base_event()), canonical=True)
    good = sign1(good_payload, kid)
    msg = bytes.fromhex(good["message"])
    messages = []

    def add(name, message: bytes, reason):
        messages.append({"name": name, "message": message.hex(), "reason": reason})

    flipped = bytearray(msg)
    flipped[-1] ^= 0x01
    add("bad_signature", bytes(flipped), "bad_signature")
    other_key = "1111111111111111111111111111111111111111111111111111111111111111"
    add("signed_by_other_key", bytes.fromhex(sign1(good_payload, kid, key=other_key)["message"]),
        "bad_signature")
    tampered = cbor2.dumps(to_wire(base_event(counter=8)), canonical=True)
    add("payload_swapped", cbor2.dumps(cbor2.CBORTag(18, [bytes.fromhex(good["protected"]), {},
                                                         tampered, bytes.fromhex(good["signature"])])),
        "bad_signature")
    add("alg_es384", bytes.fromhex(sign1(good_payload, kid, prot=cbor2.dumps({1: -35, 4: kid}))["message"]),
        "wrong_alg")
    add("alg_missing", bytes.fromhex(sign1(good_payload, kid, prot=cbor2.dumps({4: kid}))["message"]),
        "wrong_alg")
    add("kid_missing", bytes.fromhex(sign1(good_payload, kid, prot=cbor2.dumps({1: -7}))["message"]),
        "missing_kid")
    add("kid_empty", bytes.fromhex(sign1(good_payload, kid, prot=cbor2.dumps({1: -7, 4: b""}))["message"]),
        "missing_kid")
    dup_prot = b"\xa3\x01\x26\x04\x48" + kid + b"\x01\x26"
    add("duplicate_key_protected", bytes.fromhex(sign1(good_payload, kid, prot=dup_prot)["message"]),
        "duplicate_key")
    dup_payload = b"\xac" + good_payload[1:] + b"\x00\x01"  # map of 12 pairs, key 0 twice
    add("duplicate_key_payload", bytes.fromhex(sign1(dup_payload, kid)["message"]), "duplicate_key")
    add("untagged", cbor2.dumps([bytes.fromhex(good["protected"]), {}, good_payload,
                                 bytes.fromhex(good["signature"])]), "not_cose_sign1")
    add("wrong_tag_sign", cbor2.dumps(cbor2.CBORTag(98, cbor2.loads(msg).value)), "not_cose_sign1")
    add("detached_payload", cbor2.dumps(cbor2.CBORTag(18, [bytes.fromhex(good["protected"]), {}, None,
                                                          bytes.fromhex(good["signature"])])),
        "not_cose_sign1")
    add("garbage", bytes.fromhex("ff00ff00deadbeef"), "malformed_cbor")
    add("truncated", msg[:-10], "malformed_cbor")
    add("trailing_bytes", msg + b"\x00", "malformed_cbor")
    big = base_event(job="J" * 40)
    big["evidence"]["devices"] = [
        _dev("00-1B-C5-0C-00-00-01-%02X" % i, "ESME", "Commissioned", MPAN, serial="S" * 32,
             smets="V" * 32, mode="M" * 32, firmware="F" * 32, answered=True) for i in range(16)]
    big["override"] = {"reason": "R" * 200, "checks": ["C" * 32] * 8}
    biggest = len(sign1(cbor2.dumps(to_wire(big), canonical=True), kid)["message"]) // 2
    assert biggest <= 4096, f"the largest schema-valid event ({biggest} B) must fit MAX_MESSAGE"
    big["override"]["reason"] = "R" * 600  # past MAX_MESSAGE; size is checked before anything else
    add("oversize", bytes.fromhex(sign1(cbor2.dumps(to_wire(big), canonical=True), kid)["message"]),
        "oversize")
    for name, version in (("version_3", 3), ("version_0", 0)):
        add(name, bytes.fromhex(sign1(cbor2.dumps(to_wire(base_event(), version), canonical=True),
                                      kid)["message"]), "unsupported_version")
    # The hub clock (evidence key 4) came with v2: a v1 event carrying it is malformed.
    add("hub_time_in_v1", bytes.fromhex(sign1(cbor2.dumps(to_wire(base_event(), 1), canonical=True),
                                              kid)["message"]), "schema")
    return {
        "comment": "inputs: refused by the firmware builder (error names field) and, encoded "
                   "and validly signed with the device key of events.json, by the companion "
                   "(error reason). messages: refused by the companion with reason.",
        "inputs": inputs, "messages": messages,
    }


def cbor_vectors() -> dict:
    good = []
    for hexstr, value, det in CBOR_GOOD:
        check = cbor2.loads(bytes.fromhex(hexstr))  # cbor2 must accept every good vector
        del check
        good.append({"hex": hexstr, "value": value, "deterministic": det})
    return {"comment": "RFC 8949 Appendix A and edge cases. deterministic: the encoder must "
                       "produce exactly hex from value (RFC 8949 §4.2.1).",
            "good": good, "bad": [{"hex": h, "why": w} for h, w in CBOR_BAD]}


# --- HAN link frames (docs/han-link.md) --------------------------------------------
def crc_x25(data: bytes) -> int:
    """CRC-16/X.25, bit by bit (RFC 1662 §C.2); check value 0x906E for "123456789"."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def han_frame(seq: int, ftype: int, payload: bytes) -> bytes:
    body = bytes([seq, ftype]) + payload
    body += crc_x25(body).to_bytes(2, "little")
    stuffed = b"".join(bytes([0x7D, b ^ 0x20]) if b in (0x7D, 0x7E) else bytes([b]) for b in body)
    return b"\x7e" + stuffed + b"\x7e"


def han_vectors() -> dict:
    assert crc_x25(b"123456789") == 0x906E
    chf = bytes.fromhex("001BC50C00000301")
    cases = [
        ("identify_request", 1, 0x01, b""),
        ("identify_response", 1, 0x81, cbor2.dumps({0: chf, 1: bytes.fromhex("001BC50C00000302"),
                                                    2: "SMETS2", 3: "CHTS 1.0", 5: True, 6: 7})),
        ("wan_request", 2, 0x02, b""),
        ("wan_response_connected", 2, 0x82, cbor2.dumps({0: True, 1: -68})),
        ("log_request_from_0", 3, 0x03, cbor2.dumps({0: 0})),
        ("log_response", 3, 0x83, cbor2.dumps({0: 3, 1: [
            {0: bytes.fromhex("001BC50C00000310"), 1: "ESME", 2: "Commissioned", 3: "2000012345672"},
            {0: bytes.fromhex("001BC50C00000313"), 1: "IHD"}], 2: 7})),
        ("device_request", 4, 0x04, cbor2.dumps({0: bytes.fromhex("001BC50C00000310")})),
        ("error_not_responding", 4, 0x7F, cbor2.dumps({0: 4, 1: "does not answer on the HAN"})),
        # Bytes that need stuffing: 0x7E and 0x7D in the seq, the payload and the FCS.
        ("stuffing_in_seq_and_payload", 0x7E, 0x7D, bytes([0x7E, 0x7D, 0x5E, 0x5D, 0x20])),
        ("sequence_wraps", 0xFF, 0x01, b""),
    ]
    good = []
    for name, seq, ftype, payload in cases:
        good.append({"name": name, "seq": seq, "type": ftype, "payload": payload.hex(),
                     "frame": han_frame(seq, ftype, payload).hex()})
    # An FCS that itself needs stuffing.
    for seq in range(256):
        f = han_frame(seq, 0x02, b"")
        if len(f) > 6:
            good.append({"name": "stuffing_in_fcs", "seq": seq, "type": 2, "payload": "", "frame": f.hex()})
            break
    ok = han_frame(1, 0x01, b"")
    bad = [
        {"name": "bad_fcs", "bytes": (ok[:-2] + bytes([ok[-2] ^ 1]) + ok[-1:]).hex(), "why": "FCS mismatch"},
        {"name": "runt", "bytes": "7e01027e", "why": "shorter than seq+type+FCS"},
        {"name": "abort", "bytes": (ok[:-1] + b"\x7d\x7e").hex(), "why": "0x7D 0x7E aborts the frame"},
        {"name": "oversize", "bytes": ("7e" + "00" * 300 + "7e"), "why": "body over 256 bytes"},
        {"name": "truncated", "bytes": ok[:-3].hex(), "why": "cut inside the FCS"},
        {"name": "garbage", "bytes": "0102030405060708090a", "why": "no flags"},
    ]
    return {"comment": "HAN link frames (docs/han-link.md): CRC-16/X.25 FCS little-endian, RFC 1662 "
                       "stuffing. good: encode(seq, type, payload) == frame and the deframer returns "
                       "(seq, type, payload). bad: the deframer returns no frame. A final check feeds "
                       "bad bytes then a good frame: only the good one comes out.",
            "good": good, "bad": bad}


BRIDGE_KEY = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"
BRIDGE_KEY_2 = "0F56DB78CA460B055C500064824BED999A25AAF48EBB519AC201537B85479813"  # a rollover's new key


def ack_vectors() -> dict:
    """Bridge acks and rejections (docs/security.md): what a handheld must act on, and what
    it must ignore. Built here from cbor2 and cryptography only."""
    import hashlib

    device = bytes.fromhex(DEVICE_ID.replace("-", ""))
    eid = bytes(range(16))

    def kid_of(key: str) -> bytes:
        return hashlib.sha256(bytes.fromhex(public_hex(key))).digest()[:8]

    def message(payload: dict | bytes, key: str = BRIDGE_KEY, unprotected: dict | None = None,
                prot: bytes | None = None, tamper: bool = False) -> bytes:
        body = payload if isinstance(payload, bytes) else cbor2.dumps(payload, canonical=True)
        p = prot if prot is not None else cbor2.dumps({1: -7, 4: kid_of(key)}, canonical=True)
        sig = sign(key, cbor2.dumps(["Signature1", p, b"", body]))
        if tamper:
            sig = sig[:-1] + bytes([sig[-1] ^ 1])
        return cbor2.dumps(cbor2.CBORTag(18, [p, unprotected or {}, body, sig]))

    stored = {0: 1, 1: device, 2: eid, 3: "stored"}
    cases = [
        ("stored", message(stored), {"event_id": eid.hex(), "outcome": "stored", "reason": None}),
        ("duplicate", message({**stored, 3: "duplicate"}), {"event_id": eid.hex(), "outcome": "duplicate",
                                                            "reason": None}),
        ("rejected_with_reason", message({**stored, 3: "rejected", 4: "revoked_key", 5: "key revoked at 1"}),
         {"event_id": eid.hex(), "outcome": "rejected", "reason": "revoked_key"}),
        ("rejected_naming_no_event", message({0: 1, 1: device, 3: "rejected", 4: "bad_signature"}),
         {"event_id": None, "outcome": "rejected", "reason": "bad_signature"}),
        ("second_bridge_key_in_rollover", message(stored, key=BRIDGE_KEY_2),
         {"event_id": eid.hex(), "outcome": "stored", "reason": None}),
    ]
    bad = [
        ("signed_by_an_unknown_key", message(stored, key=DEVICE_KEY)),
        ("signature_tampered", message(stored, tamper=True)),
        ("for_another_device", message({**stored, 1: bytes(8)})),
        ("unsigned_old_form", cbor2.dumps({0: eid, 1: "stored"})),
        ("unprotected_header_not_empty", message(stored, unprotected={99: "x"})),
        ("alg_not_es256", message(stored, prot=cbor2.dumps({1: -35, 4: kid_of(BRIDGE_KEY)}, canonical=True))),
        ("value_sharing_tag_in_payload", message(cbor2.dumps({0: 1, 1: device, 2: eid, 3: "stored"})[:-7]
                                                 + b"\xd8\x1c" + cbor2.dumps("stored"))),
        ("wrong_version", message({**stored, 0: 2})),
        ("trailing_bytes", message(stored) + b"\x00"),
        ("truncated", message(stored)[:-5]),
        ("oversize", message({**stored, 5: "x" * 700})),
        ("empty", b""),
        ("not_tag_18", cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", b""]))),
    ]
    return {"comment": "Bridge acks (companion/wire/signing.py, firmware/agent/ackcheck.py): COSE_Sign1 ES256 "
                       "with kid = SHA-256(bridge public key)[:8]. A receiver holding bridge_keys acts on "
                       "`good` (event_id, outcome, reason) and ignores every `bad` one.",
            "device_id": DEVICE_ID, "bridge_keys": [public_hex(BRIDGE_KEY), public_hex(BRIDGE_KEY_2)],
            "good": [{"name": n, "message": m.hex(), "want": w} for n, m, w in cases],
            "bad": [{"name": n, "message": m.hex()} for n, m in bad]}


def enum_vectors() -> dict:
    """The names and codes every runtime must spell the same (tests/test_enums.py holds the
    firmware, the bridge and the bench to them). Written out here from the specifications,
    not imported from any of the three."""
    return {
        "comment": "Shared enumerations: job types (docs/wire.md), device types and inventory statuses "
                   "(DUIS), hub generations, and the HAN link's commands and error codes "
                   "(docs/han-link.md).",
        "job_types": ["install", "commission", "install_and_leave", "removal"],
        "device_types": ["ESME", "GSME", "PPMID", "HCALCS", "IHD", "CAD"],
        "statuses": ["Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned", "Decommissioned",
                     "Withdrawn", "Suspended", "Recovery", "Recovered"],
        "generations": ["SMETS1", "SMETS2"],
        "han_commands": {"IDENTIFY": 1, "WAN": 2, "LOG": 3, "DEVICE": 4},
        "han_frame_types": {"RESPONSE": 0x80, "ERROR": 0x7F},
        "han_errors": {"UNKNOWN_COMMAND": 1, "BAD_REQUEST": 2, "UNKNOWN_DEVICE": 3, "NOT_RESPONDING": 4,
                       "BUSY": 5},
    }


def files() -> dict[str, str]:
    """Each vector file's name and text, as committed (tests/test_vectors_fresh.py holds them so)."""
    return {f"{name}.json": json.dumps(data, indent=1, ensure_ascii=False) + "\n"
            for name, data in [("cbor", cbor_vectors()), ("ecdsa", ecdsa_vectors()),
                               ("events", event_vectors()), ("events_bad", bad_vectors()),
                               ("han_frames", han_vectors()), ("acks", ack_vectors()), ("enums", enum_vectors())]}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        (OUT / name).write_text(text)


if __name__ == "__main__":
    main()
