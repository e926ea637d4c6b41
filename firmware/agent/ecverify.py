# ECDSA P-256/SHA-256 signature verification (FIPS 186-4 §6.4, SEC 1 §4.1.4), for the
# bridge's signed acks. Apart from agent.ecdsa: verifying loads no signing code.
# Public input only: no secret is involved, so timing does not matter here.
import hashlib

from agent.ecpoint import _B, _GX, _GY, _N, _P, _add_affine, _affine, _double, _inv


def on_curve(x, y):
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x - 3 * x + _B)) % _P == 0


def point(sec1):
    # A 65-byte uncompressed SEC1 point -> (x, y), checked on the curve.
    if len(sec1) != 65 or sec1[0] != 4:
        raise ValueError("ecverify: key must be a 65-byte uncompressed point")
    x = int.from_bytes(sec1[1:33], "big")
    y = int.from_bytes(sec1[33:], "big")
    if not on_curve(x, y):
        raise ValueError("ecverify: key is not on P-256")
    return x, y


def verify(q, message, signature):
    # q: (x, y) from point(); message: bytes, or a list of byte strings hashed in turn (no
    # concatenated copy in a tight heap); signature: r || s, 64 bytes. -> True or False.
    if len(signature) != 64:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return False
    h = hashlib.sha256()
    for part in (message,) if isinstance(message, (bytes, bytearray)) else message:
        h.update(part)
    e = int.from_bytes(h.digest(), "big")
    w = _inv(s, _N)
    u1 = e * w % _N
    u2 = r * w % _N
    # u1*G + u2*Q by Shamir's trick: one pass of doublings over both scalars.
    gx, gy = _GX, _GY
    qx, qy = q
    X, Y, Z = _add_affine(gx, gy, 1, qx, qy)
    if Z == 0:
        gq = None
    else:
        gq = _affine(X, Y, Z)
    X, Y, Z = 0, 1, 0
    for i in range(255, -1, -1):
        if Z:
            X, Y, Z = _double(X, Y, Z)
        b = ((u1 >> i) & 1) | (((u2 >> i) & 1) << 1)
        if b == 1:
            X, Y, Z = _add_affine(X, Y, Z, gx, gy)
        elif b == 2:
            X, Y, Z = _add_affine(X, Y, Z, qx, qy)
        elif b == 3:
            if gq is None:
                X, Y, Z = _add_affine(X, Y, Z, gx, gy)
                X, Y, Z = _add_affine(X, Y, Z, qx, qy)
            else:
                X, Y, Z = _add_affine(X, Y, Z, gq[0], gq[1])
    if Z == 0:
        return False
    x, _ = _affine(X, Y, Z)
    return x % _N == r
