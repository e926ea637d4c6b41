"""DUIS messages from the DCC (SEC Appendix AD, schema 5.x; docs/duis.md): a hardened parse, the
DCC's enveloped XML signature verified, and the parts the product reads, in plain values.

Read here: `sr:Response` with `Header` (`RequestID`?, `ResponseID`?, `ResponseCode`,
`ResponseDateTime`) and `Body` holding
- `ResponseMessage` with `ServiceReference` 8.2 and `DSPInventory` (1..17 `Device`): an
  inventory response (`kind` "inventory");
- `DCCAlertMessage` with `DCCAlert/DeviceStatusChangeEvent`: a status change (`kind` "alert");
- anything else the schema allows (other service references, other alerts, device alerts):
  `kind` "other", stored as seen and otherwise ignored.

Order of checks, each a `DuisError` with a stable reason (the message is refused, nothing of it
is stored but the refusal): size, then no DTD or entity, then well-formed XML within the depth
bound, then the namespace and root, then the signature (against the configured DCC certificates,
chosen by the `X509IssuerSerial` the message names; the reference must cover the whole
message), then the shape of the signed content only (never of anything outside the signature).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from lxml import etree

from companion.errors import CompanionError
from companion.ids import check_mpxn, is_eui64

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS = "http://www.w3.org/2000/09/xmldsig#"
MAX_BYTES = 1 << 20  # a 17-device 8.2 response is about 12 KB; a megabyte is generous
MAX_DEPTH = 24  # the deepest element the schema gives a message read here is 9 levels down
MAX_DEVICES = 17  # DSPInventory maxOccurs
SKEW = 300  # s: a message may be this far ahead of our clock
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)

DEVICE_TYPES = ("ESME", "GSME", "GPF", "CHF", "HCALCS", "PPMID", "IHD", "CAD")
STATUSES = ("Pending", "Whitelisted", "InstalledNotCommissioned", "Commissioned", "Decommissioned",
            "Withdrawn", "Suspended", "Recovery", "Recovered")
# DeviceStatusChange choices (schema 5.4) and the inventory status each one leaves the device in;
# None: the change says nothing of the status (MeterIdentity ties meter points to the device).
CHANGES = {"MeterIdentity": None, "MeterDecommissioningOrWithdrawal": "Decommissioned",
           "DeviceRemovedFromInventory": "Removed", "CHFDecommissioning": "Decommissioned",
           "DeviceSuspended": "Suspended", "DeviceRestored": "Commissioned",
           "RecoveryCompleteACBCredentials": "Recovered", "RecoveryComplete": "Recovered"}
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class DuisError(CompanionError):
    reason = "invalid_duis"

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class SmiDevice:
    """One device as the DCC's inventory states it, at `at` (epoch s)."""

    device_id: str  # upper case XX-XX-..
    device_type: str
    status: str | None  # None: the message gives none (Type 2 devices have none)
    since: int  # when the status applied: DateCommissioned for Commissioned where given, else `at`
    at: int  # the message's time (ResponseDateTime)
    mpxns: tuple[str, ...] = ()
    chf: str | None = None  # the hub the inventory places it on (the CHF of the same response)
    manufacturer: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class DuisMessage:
    kind: str  # "inventory", "alert" or "other"
    digest: str  # sha256 of the bytes as received (the same file twice is one message)
    response_id: str | None
    request_id: str | None
    response_code: str
    at: int  # ResponseDateTime, epoch s
    signer: str  # the certificate that signed it: "issuer#serial"
    service: str | None  # ServiceReference, or the alert code for an alert
    devices: tuple[SmiDevice, ...] = ()
    change: str | None = None  # the DeviceStatusChange choice of a status alert
    extra: dict[str, Any] = field(default_factory=dict)


# --- the DCC's certificates ------------------------------------------------------------------------
@dataclass(frozen=True)
class DccCert:
    cert: x509.Certificate
    issuer: frozenset[tuple[str, str]]
    serial: int

    @property
    def name(self) -> str:
        return f"{self.cert.issuer.rfc4514_string()}#{self.serial}"


def _name_parts(text: str) -> frozenset[tuple[str, str]]:
    """An RFC 4514 / 2253 distinguished name as a set of (TYPE, value): the order of the parts and
    the spaces after the commas differ between writers."""
    parts = []
    for rdn in re.split(r"(?<!\\),", text):
        key, _, value = rdn.partition("=")
        parts.append((key.strip().upper(), value.strip()))
    return frozenset(parts)


def load_certs(paths: list[str]) -> list[DccCert]:
    """The DCC's signing certificates (PEM files, or folders of *.pem / *.crt)."""
    certs = []
    for p in paths:
        path = Path(p)
        files = sorted([*path.glob("*.pem"), *path.glob("*.crt")]) if path.is_dir() else [path]
        for f in files:
            try:
                data = f.read_bytes()
                loaded = x509.load_pem_x509_certificates(data)
            except (OSError, ValueError) as exc:
                raise CompanionError(f"duis_certs: cannot read a PEM certificate from {f}: {exc}") from None
            for c in loaded:
                certs.append(DccCert(c, _name_parts(c.issuer.rfc4514_string()), c.serial_number))
    return certs


# --- parsing --------------------------------------------------------------------------------------
def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_blank_text=False, collect_ids=False)


def parse(data: bytes) -> etree._Element:
    """Well-formed XML, bounded, with no DTD and no entity: the root element."""
    if len(data) > MAX_BYTES:
        raise DuisError("too_large", f"{len(data)} bytes, more than the {MAX_BYTES} a DUIS message may have")
    if _DOCTYPE.search(data):
        raise DuisError("dtd", "a DOCTYPE or ENTITY declaration: DUIS messages have none (XXE, entity expansion)")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise DuisError("malformed_xml", f"not well-formed XML: {str(exc)[:160]}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise DuisError("dtd", "a DTD: DUIS messages have none")
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise DuisError("too_deep", f"elements nested more than {MAX_DEPTH} deep")
    return root


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _text(el: etree._Element | None, name: str) -> str | None:
    if el is None:
        return None
    child = el.find(_q(name))
    if child is None or child.text is None:
        return None
    return str(child.text).strip()


def _need(el: etree._Element, name: str, where: str) -> etree._Element:
    child = el.find(_q(name))
    if child is None:
        raise DuisError("bad_shape", f"{where} has no {name}")
    return child


def _time(text: str | None, what: str, now: float) -> int:
    if not text:
        raise DuisError("bad_shape", f"no {what}")
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise DuisError("bad_time", f"{what} is not an xs:dateTime: {text[:40]!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)  # DUIS times are UTC
    if t < EARLIEST:
        raise DuisError("bad_time", f"{what} {text[:40]} is before 2000")
    if t.timestamp() > now + SKEW:
        raise DuisError("future", f"{what} {text[:40]} is in the future")
    return int(t.timestamp())


def _date(text: str, what: str, now: float) -> int:
    try:
        d = dt.date.fromisoformat(text[:10])
    except ValueError:
        raise DuisError("bad_time", f"{what} is not an xs:date: {text[:20]!r}") from None
    ts = int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.timezone.utc).timestamp())
    if ts > now + SKEW:
        raise DuisError("future", f"{what} {text[:20]} is in the future")
    if ts < EARLIEST.timestamp():
        raise DuisError("bad_time", f"{what} {text[:20]} is before 2000")
    return ts


def _eui(text: str | None, where: str) -> str:
    if text is None or not is_eui64(text):
        shown = (text or "")[:30]
        raise DuisError("bad_device_id", f"{where}: DeviceID {shown!r} is not an EUI-64 XX-XX-XX-XX-XX-XX-XX-XX")
    return text.upper()


def _mpxns(get: Callable[[str], str | None], where: str) -> tuple[str, ...]:
    """The meter points a record names (`get`: an element's text by name; None: not given)."""
    out = []
    for name in ("ImportMPxN", "SecondaryImportMPAN", "ExportMPAN"):
        v = get(name)
        if v is None:
            continue
        try:
            out.append(check_mpxn(v))
        except ValueError as exc:
            raise DuisError("bad_mpxn", f"{where}: {name}: {exc}") from None
    return tuple(out)


# --- the signature --------------------------------------------------------------------------------
def verify(root: etree._Element, certs: list[DccCert], at: dt.datetime | None = None) -> tuple[etree._Element, DccCert]:
    """-> (the signed element, the certificate). The signature must be the root's own, cover the
    whole message (Reference URI=""), be ECDSA-SHA256 over SHA-256 digests, and verify with the
    configured certificate the message names by issuer and serial, valid at `at` (the message's
    own, signed, time: an archived message signed by a certificate since expired still verifies;
    one dated outside the certificate's validity does not)."""
    import cryptography.exceptions
    from signxml.exceptions import SignXMLException
    from signxml.verifier import SignatureConfiguration, XMLVerifier
    from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

    sigs = root.findall(f".//{{{DS}}}Signature")
    if not sigs:
        raise DuisError("unsigned", "no ds:Signature: DUIS messages are signed by the DCC")
    if len(sigs) > 1 or sigs[0].getparent() is not root:
        raise DuisError("bad_signature", "the signature must be the message's own, once, after its Body")
    refs = sigs[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(refs) != 1 or refs[0].get("URI") != "":
        raise DuisError("bad_signature", "the signature must cover the whole message (one Reference, URI=\"\")")
    serial_el = sigs[0].find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509IssuerSerial")
    if serial_el is None:
        raise DuisError("bad_signature", "KeyInfo names no certificate (X509IssuerSerial)")
    issuer = (serial_el.findtext(f"{{{DS}}}X509IssuerName") or "").strip()
    serial_text = (serial_el.findtext(f"{{{DS}}}X509SerialNumber") or "").strip()
    try:
        serial = int(serial_text)
    except ValueError:
        raise DuisError("bad_signature", f"X509SerialNumber {serial_text[:40]!r} is not a number") from None
    wanted = _name_parts(issuer)
    cert = next((c for c in certs if c.serial == serial and c.issuer == wanted), None)
    if cert is None:
        raise DuisError("unknown_certificate",
                        f"signed by a certificate not in duis_certs (issuer {issuer[:80]!r}, serial {serial})")
    config = SignatureConfiguration(
        require_x509=False, expect_references=1, signature_methods=frozenset({SignatureMethod.ECDSA_SHA256}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256}), ignore_ambiguous_key_info=True,
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,  # XMLDSig 1.0 §4.3.3.2
        verification_time=at)
    try:
        result = XMLVerifier().verify(root, x509_cert=cert.cert, expect_config=config, parser=_parser())
    except (SignXMLException, cryptography.exceptions.InvalidSignature, ValueError, TypeError,
            etree.LxmlError) as exc:  # whatever the signature's content, a refusal, never a crash
        raise DuisError("bad_signature", f"the signature does not verify: {str(exc)[:160]}") from None
    signed = result.signed_xml if not isinstance(result, list) else None
    if signed is None or signed.tag != _q("Response"):
        raise DuisError("bad_signature", "the signature does not cover the Response")
    return signed, cert


# --- the message ----------------------------------------------------------------------------------
def read(data: bytes, certs: list[DccCert], now: float) -> DuisMessage:
    """Parse, verify and read one DUIS message; DuisError says why it is refused."""
    root = parse(data)
    if root.tag != _q("Response"):
        ns = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
        if ns != NS:
            raise DuisError("wrong_namespace", f"root element is not in {NS} (found {ns[:80] or 'none'!r})")
        raise DuisError("not_a_response", f"a {root.tag.partition('}')[2][:40]}, not a Response")
    # The certificate is judged at the message's own time, never later than now (a message from
    # the future is refused for its date, below, once its signature is known to be good).
    claimed, clock = _claimed_time(root), dt.datetime.fromtimestamp(now, dt.timezone.utc)
    signed, cert = verify(root, certs, min(claimed, clock) if claimed else clock)
    header = _need(signed, "Header", "Response")
    body = _need(signed, "Body", "Response")
    code = _text(header, "ResponseCode")
    if not code:
        raise DuisError("bad_shape", "Header has no ResponseCode")
    at = _time(_text(header, "ResponseDateTime"), "ResponseDateTime", now)
    base: dict[str, Any] = dict(digest=hashlib.sha256(data).hexdigest(), response_id=_text(header, "ResponseID"),
                request_id=_text(header, "RequestID"), response_code=code, at=at, signer=cert.name)
    kids = [c for c in body if isinstance(c.tag, str)]
    if len(kids) != 1:
        raise DuisError("bad_shape", "Body must hold one message")
    msg = kids[0]
    if msg.tag == _q("ResponseMessage"):
        service = _text(msg, "ServiceReference")
        inv = msg.find(_q("DSPInventory"))
        if service == "8.2" and inv is not None:
            return DuisMessage("inventory", service=service, devices=_inventory(inv, at, now), **base)
        return DuisMessage("other", service=service, **base)
    if msg.tag == _q("DCCAlertMessage"):
        alert_code = _text(msg, "DCCAlertCode")
        event = msg.find(f"{_q('DCCAlert')}/{_q('DeviceStatusChangeEvent')}")
        if event is None:
            return DuisMessage("other", service=alert_code, **base)
        device, change = _status_change(event, at)
        return DuisMessage("alert", service=alert_code, devices=(device,), change=change, **base)
    return DuisMessage("other", service=None, **base)


def _claimed_time(root: etree._Element) -> dt.datetime | None:
    """The ResponseDateTime the message claims, for the certificate's validity check only (the
    signature covers it: a forged time fails the signature); None when there is none to read."""
    text = _text(root.find(_q("Header")), "ResponseDateTime")
    try:
        t = dt.datetime.fromisoformat((text or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _inventory(inv: etree._Element, at: int, now: float) -> tuple[SmiDevice, ...]:
    devices = inv.findall(_q("Device"))
    if not devices:
        raise DuisError("bad_shape", "DSPInventory lists no Device")
    if len(devices) > MAX_DEVICES:
        raise DuisError("too_many_devices", f"DSPInventory lists {len(devices)} devices, at most {MAX_DEVICES}")
    rows: list[dict[str, Any]] = []
    ns = f"{{{NS}}}"
    for i, d in enumerate(devices, 1):
        where = f"Device {i}"
        # One pass over the record's children (in the schema's order; each at most once).
        f = {c.tag[len(ns):]: (c.text or "").strip() for c in d if isinstance(c.tag, str) and c.tag.startswith(ns)}
        eui = _eui(f.get("DeviceID"), where)
        dtype = f.get("DeviceType")
        if dtype not in DEVICE_TYPES:
            raise DuisError("bad_shape", f"{where}: DeviceType {str(dtype)[:20]!r} is not one of {DEVICE_TYPES}")
        status = f.get("DeviceStatus")
        if status is not None and status not in STATUSES:
            raise DuisError("bad_shape", f"{where}: DeviceStatus {status[:30]!r} is not a DUIS status")
        commissioned = f.get("DateCommissioned")
        since = at
        if commissioned:
            day = _date(commissioned, f"{where}: DateCommissioned", now)
            if status == "Commissioned":
                since = day
        mpxns = _mpxns(lambda n: f.get(n) or None, where)  # an empty element names none
        rows.append(dict(device_id=eui, device_type=dtype, status=status, since=since, at=at,
                         mpxns=mpxns, manufacturer=f.get("DeviceManufacturer"), model=f.get("DeviceModel")))
    hubs = [r["device_id"] for r in rows if r["device_type"] == "CHF"]
    chf = hubs[0] if len(hubs) == 1 else None  # the property's hub: the CHF the response lists
    return tuple(SmiDevice(**r, chf=chf if r["device_type"] != "CHF" else None) for r in rows)


def _status_change(event: etree._Element, at: int) -> tuple[SmiDevice, str]:
    eui = _eui(_text(event, "DeviceID"), "DeviceStatusChangeEvent")
    change_el = _need(event, "DeviceStatusChange", "DeviceStatusChangeEvent")
    kids = [c for c in change_el if isinstance(c.tag, str)]
    if len(kids) != 1 or not kids[0].tag.startswith(f"{{{NS}}}"):
        raise DuisError("bad_shape", "DeviceStatusChange must hold one change")
    change = kids[0].tag.partition("}")[2]
    if change not in CHANGES:
        raise DuisError("bad_shape", f"DeviceStatusChange {change[:40]!r} is not a DUIS choice")
    mpxns: tuple[str, ...] = ()
    if change == "MeterIdentity":
        ids = kids[0].find(_q("MeterMPxNs"))
        mpxns = _mpxns(lambda n: _text(ids, n), change)
    elif change == "MeterDecommissioningOrWithdrawal":
        ids = kids[0].find(_q("MeterDecommissionOrWithdrawal"))
        mpxns = _mpxns(lambda n: _text(ids, n), change)
    device_type = "CHF" if change == "CHFDecommissioning" else ""
    return SmiDevice(eui, device_type, CHANGES[change], at, at, mpxns), change
