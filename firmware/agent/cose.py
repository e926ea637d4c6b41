# COSE_Sign1 (RFC 9052 §4.2) with ES256 (RFC 9053 §2.1): the handheld's event envelope.
#
#   COSE_Sign1 = #6.18([protected: bstr .cbor {1: -7, 4: kid}, unprotected: {},
#                       payload: bstr, signature: bstr(64) r || s])
#   Sig_structure = ["Signature1", protected, external_aad = h'', payload]  (§4.4)
from agent import cbor
from agent import ecdsa

TAG_SIGN1 = 18
ALG_ES256 = -7
_HDR_ALG = 1
_HDR_KID = 4


def protected_header(kid):
    if not isinstance(kid, (bytes, bytearray)) or not kid:
        raise ValueError("cose: kid must be non-empty bytes")
    return cbor.dumps({_HDR_ALG: ALG_ES256, _HDR_KID: bytes(kid)})


def sig_structure(protected, payload):
    return cbor.dumps(["Signature1", protected, b"", payload])


def sign1(payload, private_key, kid):
    if not isinstance(payload, (bytes, bytearray)):
        raise ValueError("cose: payload must be bytes")
    protected = protected_header(kid)
    signature = ecdsa.sign(private_key, sig_structure(protected, payload))
    return cbor.dumps(cbor.Tag(TAG_SIGN1, [protected, {}, bytes(payload), signature]))
