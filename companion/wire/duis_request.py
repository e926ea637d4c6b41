"""Draft DUIS service requests (docs/duis.md "Drafted requests"): unsigned `sr:Request`s, schema
5.4, for the supplier's DCC adaptor to sign and send. Element names and order follow the DUIS
schema (`Request/Header`: RequestID, CommandVariant, ServiceReference, ServiceReferenceVariant;
then `Body`):

- 8.2 Read Inventory: `ReadInventory/DeviceID` (or `MPxN`);
- 8.3 Decommission Device: `DecommissionDevice/DeviceID`;
- 8.4 Update Inventory: `UpdateInventory/DeviceID` then `UpdateDeviceStatusCH`,
  `UpdateDeviceStatusExceptCH` or `UpdateMPxN/ImportMPxN`;
- 8.14.4 Communications Hub Status Update - No Fault Return (ServiceReference 8.14):
  `CHFNoFaultReturn` = `DeviceID`, `CHFNoFaultReturnType`, `UserRefID`?, `AdditionalInformation`?.

All are non-device services (CommandVariant 8), addressed to the DCC: `RequestID` is
`<user EUI>:<DCC EUI>:<counter>`, the counter never reused (a store sequence)."""

from __future__ import annotations


from lxml import etree

from companion.errors import CompanionError
from companion.ids import is_eui64

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
SCHEMA_VERSION = "5.4"
SERVICES = ("8.2", "8.3", "8.4", "8.14.4")
_REFERENCE = {"8.14.4": "8.14"}  # ServiceReference where it is not the variant itself
_NO_FAULT = ("No Fault Return (general)", "No Fault Return (non-dom opt out)",
             "No Fault Return (dual supplier HAN variant replacement)",
             "No Fault Return (SM WAN variant replacement requested by DCC)")
_CH_STATUSES = ("Commissioned", "Withdrawn", "InstalledNotCommissioned")
_OTHER_STATUSES = ("Pending", "InstalledNotCommissioned")


def request_id(user: str, recipient: str, counter: int) -> str:
    for what, eui in (("the user id (duis_user_eui)", user), ("the recipient (duis_dcc_eui)", recipient)):
        if not is_eui64(eui):
            raise CompanionError(f"{what} must be an EUI-64 XX-XX-XX-XX-XX-XX-XX-XX, got {str(eui)[:30]!r}")
    if not 0 <= counter < 1 << 64:
        raise CompanionError("the request counter is past 2^64 - 1")
    return f"{user.upper()}:{recipient.upper()}:{counter}"


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def draft(service: str, body: dict[str, str], rid: str) -> bytes:
    """One request as UTF-8 XML bytes."""
    if service not in SERVICES:
        raise CompanionError(f"no draft for service {service}: one of {', '.join(SERVICES)}")
    root = etree.Element(q("Request"), nsmap={"sr": NS})
    root.set("schemaVersion", SCHEMA_VERSION)
    header = etree.SubElement(root, q("Header"))
    header_values = (("RequestID", rid), ("CommandVariant", "8"),
                     ("ServiceReference", _REFERENCE.get(service, service)), ("ServiceReferenceVariant", service))
    for name, value in header_values:
        etree.SubElement(header, q(name)).text = value
    b = etree.SubElement(root, q("Body"))
    device = body.get("DeviceID", "")
    if not is_eui64(device):
        raise CompanionError(f"a request needs a DeviceID EUI-64, got {device[:30]!r}")
    if service == "8.2":
        etree.SubElement(etree.SubElement(b, q("ReadInventory")), q("DeviceID")).text = device.upper()
    elif service == "8.3":
        etree.SubElement(etree.SubElement(b, q("DecommissionDevice")), q("DeviceID")).text = device.upper()
    elif service == "8.14.4":
        ret = etree.SubElement(b, q("CHFNoFaultReturn"))
        etree.SubElement(ret, q("DeviceID")).text = device.upper()
        kind = body.get("CHFNoFaultReturnType", _NO_FAULT[0])
        if kind not in _NO_FAULT:
            raise CompanionError(f"CHFNoFaultReturnType must be one of {_NO_FAULT}")
        etree.SubElement(ret, q("CHFNoFaultReturnType")).text = kind
        if body.get("UserRefID"):
            etree.SubElement(ret, q("UserRefID")).text = body["UserRefID"][:25]
        if body.get("AdditionalInformation"):
            etree.SubElement(ret, q("AdditionalInformation")).text = body["AdditionalInformation"][:200]
    else:
        upd = etree.SubElement(b, q("UpdateInventory"))
        etree.SubElement(upd, q("DeviceID")).text = device.upper()
        if "UpdateDeviceStatusCH" in body:
            if body["UpdateDeviceStatusCH"] not in _CH_STATUSES:
                raise CompanionError(f"UpdateDeviceStatusCH must be one of {_CH_STATUSES}")
            etree.SubElement(upd, q("UpdateDeviceStatusCH")).text = body["UpdateDeviceStatusCH"]
        elif "UpdateDeviceStatusExceptCH" in body:
            if body["UpdateDeviceStatusExceptCH"] not in _OTHER_STATUSES:
                raise CompanionError(f"UpdateDeviceStatusExceptCH must be one of {_OTHER_STATUSES}")
            etree.SubElement(upd, q("UpdateDeviceStatusExceptCH")).text = body["UpdateDeviceStatusExceptCH"]
        elif "ImportMPxN" in body:
            etree.SubElement(etree.SubElement(upd, q("UpdateMPxN")), q("ImportMPxN")).text = body["ImportMPxN"]
        else:
            raise CompanionError("an 8.4 request needs a status or a meter point to set")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
