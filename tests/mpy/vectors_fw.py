# Runs the shared vectors (tests/vectors/*.json) through the firmware under
# MicroPython and prints one JSON result per case; the CPython tests assert on them.
# Usage: micropython vectors_fw.py DIR cbor|ecdsa|events|events_bad|acks
import binascii
import json
import sys

from agent import cbor, cose, ecdsa, event
import eventread

import vecjson

DIR, KIND = sys.argv[1], sys.argv[2]


def load(name):
    with open(DIR + "/" + name + ".json") as f:
        return json.load(f)


def emit(**kw):
    print(json.dumps(kw))


def hexs(b):
    return binascii.hexlify(b).decode()


def err(e):
    return "%s: %s" % (type(e).__name__, e)


def run_cbor():
    v = load("cbor")
    for i, case in enumerate(v["good"]):
        data = vecjson.unhex(case["hex"])
        out = {"index": i, "hex": case["hex"]}
        try:
            got = cbor.loads(data)
            out["decoded_equal"] = vecjson.same(got, vecjson.value(case["value"]))
            out["decoded"] = repr(got)
        except Exception as e:
            out["decode_error"] = err(e)
        if case["deterministic"]:
            try:
                out["encoded"] = hexs(cbor.dumps(vecjson.value(case["value"])))
            except Exception as e:
                out["encode_error"] = err(e)
        emit(**out)
    for i, case in enumerate(v["bad"]):
        out = {"index": i, "hex": case["hex"], "bad": True}
        try:
            out["decoded"] = repr(cbor.loads(vecjson.unhex(case["hex"])))
        except ValueError as e:
            out["error"] = err(e)
            out["is_value_error"] = True
        except Exception as e:
            out["error"] = err(e)
            out["is_value_error"] = False
        emit(**out)


def run_ecdsa():
    v = load("ecdsa")
    rfc = v["rfc6979"]
    key = vecjson.unhex(rfc["private_key"])
    emit(case="rfc6979_public", got=hexs(ecdsa.public_key(key)), want=rfc["public_key"])
    for c in rfc["cases"]:
        emit(case="rfc6979_" + c["message_hex"], got=hexs(ecdsa.sign(key, vecjson.unhex(c["message_hex"]))),
             want=c["signature"])
    for i, c in enumerate(v["extra"]):
        key = vecjson.unhex(c["private_key"])
        emit(case="extra_%d_public" % i, got=hexs(ecdsa.public_key(key)), want=c["public_key"])
        emit(case="extra_%d_sign" % i, got=hexs(ecdsa.sign(key, vecjson.unhex(c["message_hex"]))),
             want=c["signature"])


def run_events():
    v = load("events")
    key = vecjson.unhex(v["private_key"])
    kid = vecjson.unhex(v["kid"])
    for c in v["cases"]:
        out = {"name": c["name"]}
        try:
            payload = event.build(vecjson.value(c["input"]))
            out["payload"] = hexs(payload)
            out["protected"] = hexs(cose.protected_header(kid))
            out["sig_structure"] = hexs(cose.sig_structure(cose.protected_header(kid), payload))
            msg = cose.sign1(payload, key, kid)
            out["message"] = hexs(msg)
            back = eventread.parse(payload)
            out["parse_equal"] = vecjson.same(back, _normal(vecjson.value(c["input"])))
        except Exception as e:
            out["error"] = err(e)
        emit(**out)


def _normal(ev):
    # What parse() gives back: EUI-64s upper-case, optional "override" only when present.
    def sub(d):
        return {k: (x.upper() if k in ("chf", "gpf", "eui") else x) for k, x in d.items()}

    e = ev["evidence"]
    ev["evidence"] = {
        "read_time": e["read_time"],
        "hub": None if e["hub"] is None else sub(e["hub"]),
        "wan": e["wan"],
        "devices": [sub(d) for d in e["devices"]],
    }
    if e.get("hub_time") is not None:
        ev["evidence"]["hub_time"] = e["hub_time"]
    return ev


def run_events_bad():
    v = load("events_bad")
    for c in v["inputs"]:
        out = {"name": c["name"]}
        try:
            out["payload"] = hexs(event.build(vecjson.value(c["input"])))
        except ValueError as e:
            out["error"] = str(e)
        except Exception as e:
            out["crash"] = err(e)
        emit(**out)


def run_acks():
    from agent import ackcheck

    v = load("acks")
    keys = [binascii.unhexlify(k) for k in v["bridge_keys"]]
    device = binascii.unhexlify(v["device_id"].replace("-", ""))
    for kind in ("good", "bad"):
        for c in v[kind]:
            out = {"name": c["name"], "kind": kind}
            try:
                eid, outcome, reason, _ = ackcheck.check(binascii.unhexlify(c["message"]), keys, device)
                out["got"] = {"event_id": hexs(eid) if eid else None, "outcome": outcome, "reason": reason}
            except ValueError as e:
                out["error"] = str(e)
            except Exception as e:
                out["crash"] = err(e)
            emit(**out)


def run_policy():
    # Only disagreements are printed, then the count of cases run.
    from agent import predict

    v = load("policy")
    n = 0
    for etype, mpxn, hi, wan, li, flag, code in v["cases"]:
        ev = {"hub": None if hi < 0 else v["hubs"][hi], "wan": None if wan is None else {"connected": wan},
              "devices": [] if hi < 0 else v["logs"][li]}
        got = predict.observe(etype, ev, mpxn)
        if got != (flag, code):
            emit(case=n, type=etype, mpxn=mpxn, want=[flag, code], got=list(got))
        n += 1
    emit(ran=n, words=(predict.WORDS == v["words"]))


{"cbor": run_cbor, "ecdsa": run_ecdsa, "events": run_events, "events_bad": run_events_bad,
 "acks": run_acks, "policy": run_policy}[KIND]()
