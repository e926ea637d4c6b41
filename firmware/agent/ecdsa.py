# ECDSA over P-256 with SHA-256 (FIPS 186-4 §6, SEC 1 §4.1) and deterministic
# nonces per RFC 6979 §3.2, in pure MicroPython. Used for COSE ES256 (RFC 9053 §2.1).
#
# Points are in Jacobian coordinates (a = -3 formulas, EFD "dbl-2001-b" and
# "madd-2007-bl"). k*G uses a fixed-base comb (Lim-Lee) of four teeth 64 bits apart:
# a table of the 15 sums of G, 2^64 G, 2^128 G and 2^192 G in affine form, built on
# first use (the size of a 4-bit window's table), then 64 doublings and at most 64
# additions, against 252 and 63 for a window. Big-integer arithmetic is not
# constant-time on MicroPython: timing side channels are out of scope
# (docs/decisions.md).
import hashlib
from os import urandom

from agent.ecpoint import _GX, _GY, _N, _add_affine, _affine, _double, _inv

_table = None  # [None, T1, ..., T15]: Ti = sum of 2^(64 t) G over the bits t of i, affine (x, y)


def _base_table():
    global _table
    if _table is None:
        teeth = [(_GX, _GY)]
        X, Y, Z = _GX, _GY, 1
        for _ in range(3):
            for _ in range(64):
                X, Y, Z = _double(X, Y, Z)
            teeth.append(_affine(X, Y, Z))
            X, Y, Z = teeth[-1][0], teeth[-1][1], 1
        t = [None]
        for i in range(1, 16):
            X, Y, Z = 0, 1, 0
            for b in range(4):
                if i >> b & 1:
                    X, Y, Z = _add_affine(X, Y, Z, teeth[b][0], teeth[b][1])
            t.append(_affine(X, Y, Z))
        _table = t
    return _table


def _mul_base(k):
    # k*G for 0 < k < n, as affine (x, y): column j of the comb takes bits j, j+64,
    # j+128 and j+192 of k.
    t = _base_table()
    X, Y, Z = 0, 1, 0
    for j in range(63, -1, -1):
        if Z:
            X, Y, Z = _double(X, Y, Z)
        w = (k >> j & 1) | (k >> (j + 63) & 2) | (k >> (j + 126) & 4) | (k >> (j + 189) & 8)
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
    # message: bytes, or a tuple of byte strings hashed one after the other (no joined copy:
    # the handheld signs at the tightest moment of its heap).
    d = _scalar(private_key)
    hasher = hashlib.sha256()
    for part in (message if isinstance(message, tuple) else (message,)):
        hasher.update(part)
    h1 = hasher.digest()
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
                s = _inv(k, _N) * (e + r * d) % _N
                if s:
                    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        K = _hmac(K, V + b"\x00")
        V = _hmac(K, V)
