# COSE_Sign1 (RFC 9052 §4.2) with ES256 (RFC 9053 §2.1): the handheld's event envelope.
#
#   COSE_Sign1 = #6.18([protected: bstr .cbor {1: -7, 4: kid}, unprotected: {},
#                       payload: bstr, signature: bstr(64) r || s])
#   Sig_structure = ["Signature1", protected, external_aad = h'', payload]  (§4.4)
#
# Encoded here, without agent.cbor: the signing stage is one of the job's largest, and
# these few fixed shapes need only a byte-string head (RFC 8949 §3). The vectors hold
# the bytes to agent.cbor's deterministic encoding.
from agent import ecdsa

TAG_SIGN1 = 18
ALG_ES256 = -7


def _bstr(b):
    # A byte string's head and bytes (RFC 8949 §3.1, major type 2, shortest form).
    n = len(b)
    if n < 24:
        head = bytes((0x40 | n,))
    elif n < 0x100:
        head = bytes((0x58, n))
    else:
        head = bytes((0x59, n >> 8, n & 0xFF))  # payloads are under 4 KiB (event.MAX_PAYLOAD)
    return head + b


def protected_header(kid):
    if not isinstance(kid, (bytes, bytearray)) or not kid:
        raise ValueError("cose: kid must be non-empty bytes")
    return b"\xa2\x01\x26\x04" + _bstr(bytes(kid))  # {1: -7, 4: kid}


def sig_structure(protected, payload):
    return b"\x84\x6aSignature1" + _bstr(protected) + b"\x40" + _bstr(bytes(payload))


def sign1(payload, private_key, kid):
    if not isinstance(payload, (bytes, bytearray)):
        raise ValueError("cose: payload must be bytes")
    protected = protected_header(kid)
    signature = ecdsa.sign(private_key, sig_structure(protected, payload))
    return b"\xd2\x84" + _bstr(protected) + b"\xa0" + _bstr(bytes(payload)) + _bstr(signature)
