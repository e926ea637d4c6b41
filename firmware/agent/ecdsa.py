# ECDSA over P-256 with SHA-256 (FIPS 186-4 §6, SEC 1 §4.1) and deterministic
# nonces per RFC 6979 §3.2, in pure MicroPython. Used for COSE ES256 (RFC 9053 §2.1).
#
# Points are in Jacobian coordinates (a = -3 formulas, EFD "dbl-2001-b" and
# "madd-2007-bl"); k*G uses a 4-bit fixed window over a table of 1G..15G in
# affine form, built on first use. Big-integer arithmetic is not constant-time
# on MicroPython: timing side channels are out of scope (docs/decisions.md).
import hashlib
from os import urandom

_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

_table = None  # [None, 1G, 2G, ..., 15G] as affine (x, y)


def _double(X, Y, Z):
    if Z == 0 or Y == 0:
        return 0, 1, 0
    p = _P
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return X3, Y3, Z3


def _add_affine(X1, Y1, Z1, x2, y2):
    # (X1:Y1:Z1) + (x2, y2), the second point affine.
    if Z1 == 0:
        return x2, y2, 1
    p = _P
    z1z1 = Z1 * Z1 % p
    u2 = x2 * z1z1 % p
    s2 = y2 * Z1 * z1z1 % p
    h = (u2 - X1) % p
    r = 2 * (s2 - Y1) % p
    if h == 0:
        if r == 0:
            return _double(X1, Y1, Z1)
        return 0, 1, 0
    hh = h * h % p
    i = 4 * hh % p
    j = h * i % p
    v = X1 * i % p
    X3 = (r * r - j - 2 * v) % p
    Y3 = (r * (v - X3) - 2 * Y1 * j) % p
    Z3 = ((Z1 + h) * (Z1 + h) - z1z1 - hh) % p
    return X3, Y3, Z3


def _affine(X, Y, Z):
    if Z == 0:
        raise ValueError("ecdsa: point at infinity")
    zi = pow(Z, _P - 2, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P


def _base_table():
    global _table
    if _table is None:
        t = [None, (_GX, _GY)]
        X, Y, Z = _GX, _GY, 1
        for _ in range(14):
            X, Y, Z = _add_affine(X, Y, Z, _GX, _GY)
            t.append(_affine(X, Y, Z))
        _table = t
    return _table


def _mul_base(k):
    # k*G for 0 < k < n, as affine (x, y).
    t = _base_table()
    X, Y, Z = 0, 1, 0
    for shift in range(252, -4, -4):
        if Z:
            for _ in range(4):
                X, Y, Z = _double(X, Y, Z)
        w = (k >> shift) & 15
        if w:
            X, Y, Z = _add_affine(X, Y, Z, t[w][0], t[w][1])
    return _affine(X, Y, Z)


def _scalar(private_key):
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
        raise ValueError("ecdsa: private key must be 32 bytes")
    d = int.from_bytes(private_key, "big")
    if not 0 < d < _N:
        raise ValueError("ecdsa: private key out of range")
    return d


def _hmac(key, msg):
    # HMAC-SHA256 (RFC 2104) for a key no longer than the 64-byte block.
    k = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    outer.update(inner.digest())
    return outer.digest()


def generate_key():
    # A fresh private key from the OS/board RNG (os.urandom), uniformly in [1, n-1].
    while True:
        k = urandom(32)
        d = int.from_bytes(k, "big")
        if 0 < d < _N:
            return k


def public_key(private_key):
    x, y = _mul_base(_scalar(private_key))
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def sign(private_key, message):
    d = _scalar(private_key)
    h1 = hashlib.sha256(message).digest()
    e = int.from_bytes(h1, "big")  # bits2int: qlen == hlen == 256
    # RFC 6979 §3.2 steps b-h; int2octets(x) and bits2octets(h1) are 32 bytes.
    x = bytes(private_key)
    h = (e % _N).to_bytes(32, "big")
    V = b"\x01" * 32
    K = bytes(32)
    K = _hmac(K, V + b"\x00" + x + h)
    V = _hmac(K, V)
    K = _hmac(K, V + b"\x01" + x + h)
    V = _hmac(K, V)
    while True:
        V = _hmac(K, V)
        k = int.from_bytes(V, "big")
        if 0 < k < _N:
            r = _mul_base(k)[0] % _N
            if r:
                s = pow(k, _N - 2, _N) * (e + r * d) % _N
                if s:
                    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        K = _hmac(K, V + b"\x00")
        V = _hmac(K, V)
