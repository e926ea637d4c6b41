# P-256 point arithmetic (FIPS 186-4 D.1.2.3) in Jacobian coordinates, a = -3 formulas
# (EFD "dbl-2001-b" and "madd-2007-bl"): shared by signing (agent.ecdsa) and verifying
# (agent.ecverify), so that each loads only what it needs.

_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


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


def _inv(a, m):
    # a^-1 mod m (m prime, 0 < a < m) by the extended Euclidean algorithm: five times
    # faster than Fermat's pow(a, m - 2, m) on MicroPython's big integers.
    lo, hi = 1, 0
    x, y = a % m, m
    while x > 1:
        q = y // x
        lo, x, hi, y = hi - lo * q, y - x * q, lo, x
    return lo % m


def _affine(X, Y, Z):
    if Z == 0:
        raise ValueError("ecdsa: point at infinity")
    zi = _inv(Z, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P
