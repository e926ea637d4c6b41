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


def _head(n):
    # A byte string's head (RFC 8949 §3.1, major type 2, shortest form).
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    return bytes((0x59, n >> 8, n & 0xFF))  # payloads are under 4 KiB (event.MAX_PAYLOAD)


def _bstr(b):
    return _head(len(b)) + b


def protected_header(kid):
    if not isinstance(kid, (bytes, bytearray)) or not kid:
        raise ValueError("cose: kid must be non-empty bytes")
    return b"\xa2\x01\x26\x04" + _bstr(bytes(kid))  # {1: -7, 4: kid}


def _sig_parts(protected, payload):
    # Sig_structure (§4.4) as parts, hashed in turn: the payload is never copied to sign it.
    return (b"\x84\x6aSignature1" + _bstr(protected) + b"\x40" + _head(len(payload)), payload)


def sig_structure(protected, payload):
    head, body = _sig_parts(protected, payload)
    return head + bytes(body)


def sign1_parts(payload, private_key, kid):
    # The COSE_Sign1 message as (head, payload, signature) byte strings, which joined are
    # the message: the handheld writes them to flash in turn and never holds a joined copy
    # at the heap's tightest moment (agent.saving).
    if not isinstance(payload, (bytes, bytearray)):
        raise ValueError("cose: payload must be bytes")
    protected = protected_header(kid)
    signature = ecdsa.sign(private_key, _sig_parts(protected, payload))
    return (b"\xd2\x84" + _bstr(protected) + b"\xa0" + _head(len(payload)), payload, _bstr(signature))


def sign1(payload, private_key, kid):
    return b"".join(sign1_parts(payload, private_key, kid))
