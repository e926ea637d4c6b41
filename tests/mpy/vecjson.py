# MicroPython side of tests/vectors/*.json: the JSON value form -> Python values.
# {"$bytes": hex}, {"$tag": [n, v]}, {"$map": [[k, v], ...]}, {"$float": "inf"|"-inf"|"nan"}
import binascii

from agent import cbor


def unhex(s):
    return binascii.unhexlify(s)


def value(v):
    if isinstance(v, dict):
        if "$bytes" in v:
            return unhex(v["$bytes"])
        if "$tag" in v:
            return cbor.Tag(v["$tag"][0], value(v["$tag"][1]))
        if "$map" in v:
            return {value(k): value(x) for k, x in v["$map"]}
        if "$float" in v:
            return float(v["$float"])
        return {k: value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


def same(a, b):
    # Equality that also holds for NaN and tells -0.0 from 0.0, and bool from int.
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        if a != a or b != b:
            return a != a and b != b
        return a == b and str(a)[0] == str(b)[0]
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if isinstance(a, cbor.Tag) and isinstance(b, cbor.Tag):
        return a.tag == b.tag and same(a.value, b.value)
    return type(a) is type(b) and a == b
