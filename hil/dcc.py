"""The bench's DCC: its signing certificate, and DUIS 8.2 Read Inventory responses and device
status alerts built to the DUIS 5.4 schema's element names and order, signed as the DCC signs
(enveloped, exclusive c14n, ECDSA-SHA256, KeyInfo by X509IssuerSerial). The emulated DCC adaptor
(hil/bench.py) publishes them to the bridge; tests use them directly (tests/duis_support.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner

NS = "http://www.dccinterface.co.uk/ServiceUserGateway"
DS = "http://www.w3.org/2000/09/xmldsig#"


# Scenario alert kinds (`smi_alert`): the DUIS DeviceStatusChange choice, and the inventory status
# it leaves the device in (None: unchanged).
ALERTS = {"decommissioned": ("MeterDecommissioningOrWithdrawal", "Decommissioned"),
          "removed": ("DeviceRemovedFromInventory", "unknown"),
          "suspended": ("DeviceSuspended", "Suspended"),
          "restored": ("DeviceRestored", "Commissioned"),
          "chf_decommissioned": ("CHFDecommissioning", "Decommissioned"),
          "recovered": ("RecoveryComplete", "Recovered"),
          "identity": ("MeterIdentity", None)}


class Dcc:
    def __init__(self, cn: str = "Z1", serial: int = 0x1234ABCD,
                 valid: tuple[dt.datetime, dt.datetime] | None = None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(serial)
                     .not_valid_before(valid[0] if valid else dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
                     .not_valid_after(valid[1] if valid else now + dt.timedelta(days=3650))
                     .sign(self.key, hashes.SHA256()))
        self.issuer = f"CN={cn}, OU=07"
        self.serial = serial
        self._n = 0

    def pem(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def sign(self, xml: bytes, issuer: str | None = None, serial: int | None = None,
             reference: str | None = None) -> bytes:
        root = etree.fromstring(xml)
        ki = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
        ids = etree.SubElement(etree.SubElement(ki, f"{{{DS}}}X509Data"), f"{{{DS}}}X509IssuerSerial")
        etree.SubElement(ids, f"{{{DS}}}X509IssuerName").text = issuer or self.issuer
        etree.SubElement(ids, f"{{{DS}}}X509SerialNumber").text = str(serial or self.serial)
        signer = XMLSigner(signature_algorithm="ecdsa-sha256", digest_algorithm="sha256",
                           c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
        pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        signed = signer.sign(root, key=pem, key_info=ki, reference_uri=reference,
                             id_attribute="Id" if reference else None)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    def _header(self, at: str) -> str:
        self._n += 1
        return (f"<sr:Header><sr:RequestID>90-B3-D5-1F-30-01-00-00:90-B3-D5-1F-30-00-00-02:{self._n}</sr:RequestID>"
                f"<sr:ResponseID>90-B3-D5-1F-30-00-00-02:90-B3-D5-1F-30-01-00-00:{self._n}</sr:ResponseID>"
                f"<sr:ResponseCode>I0</sr:ResponseCode><sr:ResponseDateTime>{at}</sr:ResponseDateTime></sr:Header>")

    def inventory(self, devices: list[dict], at: str = "2026-11-20T10:00:00Z", sign: bool = True) -> bytes:
        """devices: dicts of DeviceID, DeviceType, DeviceStatus?, DateCommissioned?, ImportMPxN?"""
        rows = []
        for d in devices:
            parts = [f"<sr:DeviceID>{escape(d['DeviceID'])}</sr:DeviceID>",
                     f"<sr:DeviceType>{d['DeviceType']}</sr:DeviceType>"]
            if d.get("DeviceStatus"):
                parts.append(f"<sr:DeviceStatus>{d['DeviceStatus']}</sr:DeviceStatus>")
            parts.append("<sr:DeviceManufacturer>ACME</sr:DeviceManufacturer><sr:DeviceModel>M1</sr:DeviceModel>")
            if d.get("DateCommissioned"):
                parts.append(f"<sr:DateCommissioned>{d['DateCommissioned']}</sr:DateCommissioned>")
            if d.get("ImportMPxN"):
                parts.append(f"<sr:ImportMPxN>{d['ImportMPxN']}</sr:ImportMPxN>")
            rows.append("<sr:Device>" + "".join(parts) + "</sr:Device>")
        xml = (f'<sr:Response xmlns:sr="{NS}" schemaVersion="5.1">{self._header(at)}<sr:Body><sr:ResponseMessage>'
               "<sr:ServiceReference>8.2</sr:ServiceReference><sr:ServiceReferenceVariant>8.2</sr:ServiceReferenceVariant>"
               f"<sr:DSPInventory>{''.join(rows)}</sr:DSPInventory></sr:ResponseMessage></sr:Body></sr:Response>")
        return self.sign(xml.encode()) if sign else xml.encode()

    def alert(self, device: str, change: str, mpxn: str | None = None, at: str = "2026-11-25T09:00:00Z",
              code: str = "N27") -> bytes:
        inner = ""
        if change in ("MeterDecommissioningOrWithdrawal", "MeterIdentity") and not mpxn:
            raise ValueError(f"{change} names the meter's MPxN: the device has none")
        if change == "MeterDecommissioningOrWithdrawal":
            inner = (f"<sr:MeterDecommissionOrWithdrawal><sr:ImportMPxN>{mpxn}</sr:ImportMPxN>"
                     "</sr:MeterDecommissionOrWithdrawal>")
        elif change == "MeterIdentity":
            inner = f"<sr:MeterMPxNs><sr:ImportMPxN>{mpxn}</sr:ImportMPxN></sr:MeterMPxNs>"
        xml = (f'<sr:Response xmlns:sr="{NS}" schemaVersion="5.1">{self._header(at)}<sr:Body><sr:DCCAlertMessage>'
               f"<sr:DCCAlertCode>{code}</sr:DCCAlertCode><sr:DCCAlert><sr:DeviceStatusChangeEvent>"
               f"<sr:DeviceID>{device}</sr:DeviceID><sr:DeviceStatusChange><sr:{change}>{inner}</sr:{change}>"
               "</sr:DeviceStatusChange></sr:DeviceStatusChangeEvent></sr:DCCAlert></sr:DCCAlertMessage></sr:Body>"
               "</sr:Response>")
        return self.sign(xml.encode())


def duis_now() -> str:
    """Now as a DUIS xs:dateTime (UTC, milliseconds)."""
    t = dt.datetime.now(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
