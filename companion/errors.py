"""One error tree for everything the companion rejects.

Every error is a ``ValueError`` and carries a stable ``reason`` code: the code is what
metrics count and what the rejection topic carries; the message says what to fix.
"""

from __future__ import annotations


class CompanionError(ValueError):
    reason = "invalid"


class ServiceError(Exception):
    """An outage, not bad input: the store, the broker or a folder is not answering as it
    should. Never a ValueError, so it is never answered as one (a 400, a rejection): it is
    retried where the store says it is transient, answered 503 with a generic message, and
    counted."""

    reason = "unavailable"


class WireError(CompanionError):
    """An event message that cannot be accepted."""

    reason = "invalid_message"


class OversizeError(WireError):
    reason = "oversize"


class MalformedError(WireError):
    """Not well-formed CBOR, or CBOR past the nesting limit."""

    reason = "malformed_cbor"


class DuplicateKeyError(MalformedError):
    """A CBOR map with a repeated key (RFC 9052 §3: such messages are rejected)."""

    reason = "duplicate_key"


class NotSign1Error(WireError):
    """Well-formed CBOR, but not a tagged COSE_Sign1 (RFC 9052 §4.2)."""

    reason = "not_cose_sign1"


class WrongAlgError(WireError):
    reason = "wrong_alg"


class MissingKidError(WireError):
    reason = "missing_kid"


class BadSignatureError(WireError):
    reason = "bad_signature"


class SchemaError(WireError):
    """The signed payload does not follow docs/wire.md."""

    reason = "schema"


class UnsupportedVersionError(SchemaError):
    reason = "unsupported_version"


class UnknownEventTypeError(SchemaError):
    reason = "unknown_event_type"


class InvalidMpxnError(SchemaError):
    reason = "invalid_mpxn"


class InvalidDeviceIdError(SchemaError):
    reason = "invalid_device_id"


# Every reason the bridge gives when it rejects a message (docs/bridge.md "Ingest", whose
# table tests/test_house.py holds to this): the wire's, in the order they are checked, then
# the bridge's own.
WIRE_REASONS = ("oversize", "malformed_cbor", "duplicate_key", "not_cose_sign1", "wrong_alg", "missing_kid",
                "bad_signature", "schema", "unsupported_version", "unknown_event_type", "invalid_mpxn",
                "invalid_device_id")
BRIDGE_REASONS = ("bad_topic", "kid_mismatch", "unknown_key", "revoked_key", "time_in_future",
                  "time_before_floor", "read_time_out_of_range", "id_conflict", "internal_error")
REJECTIONS = WIRE_REASONS + BRIDGE_REASONS
