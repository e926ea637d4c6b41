"""The emulated Communications Hub: serves a premises on a pseudo-terminal (docs/han-link.md).

The driver for a ``Premises`` resource. It answers the handheld's requests on the
master side of a pty (hil/serialport.py), paced at the premises' baud rate and with realistic
response delays. Its state can change while it runs (``set_wan``, ``add_device``,
``remove_device``...), each change bumping the hub's state revision, and line faults
can be switched on at any time (``faults``). With no hub in the premises the line
stays silent, as at a legacy meter.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, fields

import cbor2

from . import frame
from .premises import NO_STATUS, STATUSES, Device, Premises, PremisesError, _check_device
from .serialport import PtyLine

CMD_IDENTIFY, CMD_WAN, CMD_LOG, CMD_DEVICE = 0x01, 0x02, 0x03, 0x04
RESPONSE, ERROR = 0x80, 0x7F
E_UNKNOWN_COMMAND, E_BAD_REQUEST, E_UNKNOWN_DEVICE, E_NOT_RESPONDING, E_BUSY = 1, 2, 3, 4, 5
LOG_PAGE = 2  # device-log entries per LOG response; keeps frames short on a noisy line


@dataclass
class LineFaults:
    """Faults on the line, switchable while running. Rates are per byte or per frame."""

    corrupt_rate: float = 0.0  # each byte, either direction, replaced by a random byte
    drop_byte_rate: float = 0.0  # each byte, either direction, lost
    drop_frame_rate: float = 0.0  # each response, not sent at all
    delay_ms: int = 0  # added to every response delay
    hung: bool = False  # the hub takes requests and never answers
    unplugged: bool = False  # nothing passes either way

    def set(self, name: str, value: str) -> None:
        kinds = {f.name: f.type for f in fields(self)}
        if name not in kinds:
            raise ValueError(f"no fault {name!r} (one of {', '.join(kinds)})")
        cur = getattr(self, name)
        if isinstance(cur, bool):
            setattr(self, name, value.lower() in ("1", "true", "on", "yes"))
        elif isinstance(cur, int):
            setattr(self, name, int(value))
        else:
            setattr(self, name, float(value))


@dataclass
class HubStats:
    requests: int = 0
    responses: int = 0
    dropped_frames: int = 0
    corrupted_bytes: int = 0
    dropped_bytes: int = 0


class HubEmulator:
    def __init__(self, premises: Premises, *, seed: int | None = None, baud: int | None = None):
        self.premises = premises.copy()
        self.faults = LineFaults()
        self.stats = HubStats()
        self.rev = 1
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._port = PtyLine(baudrate=baud or premises.baud)
        self._byte_time = 10.0 / (baud or premises.baud)  # 8N1: 10 bits a byte
        self._deframer = frame.Deframer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle ---------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._port.slave_path

    def start(self) -> "HubEmulator":
        self._thread = threading.Thread(target=self._serve, name=f"hub-{self.premises.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._port.close()  # wakes the serving thread at once
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "HubEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state changes (each bumps the revision) ----------------------------------------
    def _changed(self) -> None:
        self.rev += 1

    def set_wan(self, connected: bool, signal: int | None = None) -> None:
        with self._lock:
            self.premises.wan.connected = connected
            self.premises.wan.signal = signal
            self._changed()

    def set_hub(self, **values: object) -> None:
        with self._lock:
            if self.premises.hub is None:
                raise PremisesError("this premises has no hub")
            for k, v in values.items():
                if not hasattr(self.premises.hub, k):
                    raise PremisesError(f"hub has no field {k}")
                setattr(self.premises.hub, k, v)
            self._changed()

    def add_device(self, device: Device) -> None:
        with self._lock:
            if self.premises.hub is None:
                raise PremisesError("this premises has no hub")
            self.premises.devices.append(device)
            self._changed()

    def set_status(self, eui: str, status: str) -> None:
        if status not in STATUSES:
            raise PremisesError(f"status must be one of {', '.join(STATUSES)}")
        with self._lock:
            self.premises.device(eui).status = status
            self._changed()

    def remove_device(self, eui: str) -> None:
        """The device is taken away: still in the hub's log, no longer answering."""
        with self._lock:
            self.premises.device(eui).answers = False
            self._changed()

    def forget_device(self, eui: str) -> None:
        """The device is taken out of the hub's log."""
        with self._lock:
            self.premises.devices.remove(self.premises.device(eui))
            self._changed()

    def command(self, line: str) -> str:
        """One control command (the `hil premises` console, and scenarios)."""
        words = line.split()
        if not words:
            return ""
        op, args = words[0], words[1:]
        try:
            if op == "wan":
                self.set_wan(args[0] == "up", int(args[1]) if len(args) > 1 else None)
            elif op == "status":
                self.set_status(args[0], args[1])
            elif op == "dcc":
                self.set_hub(dcc=args[0] in ("true", "yes", "1", "on"))
            elif op == "clock":  # the hub's clock: seconds from true UTC, or "none" (no time read)
                self.set_hub(clock_offset=None if args[0] == "none" else int(args[0]))
            elif op == "add":  # add EUI TYPE [STATUS|-] [MPXN|-]: a device joins the hub's log
                status = args[2] if len(args) > 2 and args[2] != "-" else None
                mpxn = args[3] if len(args) > 3 and args[3] != "-" else None
                d = Device(_console_eui(args[0]), args[1], status, mpxn)
                _check_device("add", d)
                self.add_device(d)
            elif op == "gpf":  # gpf EUI|none: the hub's gas proxy function, or none
                self.set_hub(gpf=None if args[0] == "none" else _console_eui(args[0]))
            elif op == "remove":
                self.remove_device(args[0])
            elif op == "forget":
                self.forget_device(args[0])
            elif op in ("unplug", "plug", "hang", "unhang"):
                if op in ("unplug", "plug"):
                    self.faults.unplugged = op == "unplug"
                else:
                    self.faults.hung = op == "hang"
            elif op == "fault":
                self.faults.set(args[0], args[1])
            elif op == "show":
                return f"rev {self.rev} faults {self.faults} stats {self.stats}"
            else:
                return f"error: unknown command {op!r}"
        except (IndexError, ValueError, PremisesError) as exc:
            return f"error: {exc}"
        return "ok"

    # --- serving ---------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._port.read(256, timeout=1.0)
            except OSError:  # the line closed (stop)
                if self._stop.is_set():
                    return
                raise
            if not data:
                continue
            data = self._line(data)
            for seq, ftype, payload in self._deframer.feed(data):
                self._handle(seq, ftype, payload)

    def _line(self, data: bytes) -> bytes:
        """What survives the line, in either direction."""
        f = self.faults
        if f.unplugged:
            return b""
        if not (f.corrupt_rate or f.drop_byte_rate):
            return data
        out = bytearray()
        for b in data:
            if f.drop_byte_rate and self._rng.random() < f.drop_byte_rate:
                self.stats.dropped_bytes += 1
                continue
            if f.corrupt_rate and self._rng.random() < f.corrupt_rate:
                self.stats.corrupted_bytes += 1
                b = (b + self._rng.randrange(1, 256)) & 0xFF
            out.append(b)
        return bytes(out)

    def _handle(self, seq: int, ftype: int, payload: bytes) -> None:
        self.stats.requests += 1
        if self.premises.hub is None or self.faults.hung:
            return
        with self._lock:
            rtype, body = self._answer(ftype, payload)
        if self.faults.drop_frame_rate and self._rng.random() < self.faults.drop_frame_rate:
            self.stats.dropped_frames += 1
            return
        lo, hi = self.premises.response_delay_ms
        time.sleep((self._rng.uniform(lo, hi) + self.faults.delay_ms) / 1000)
        if self.faults.hung or self.faults.unplugged:
            return
        out = self._line(frame.encode(seq, rtype, cbor2.dumps(body, canonical=True)))
        self._paced_write(out)
        self.stats.responses += 1

    def _paced_write(self, data: bytes) -> None:
        for i in range(0, len(data), 32):
            chunk = data[i:i + 32]
            self._port.write(chunk)
            time.sleep(len(chunk) * self._byte_time)

    def _answer(self, cmd: int, payload: bytes) -> tuple[int, object]:
        try:
            args = cbor2.loads(payload) if payload else {}
        except Exception:
            return ERROR, {0: E_BAD_REQUEST, 1: "request is not CBOR"}
        p = self.premises
        hub = p.hub
        assert hub is not None
        if cmd == CMD_IDENTIFY:
            body = {0: _eui(hub.chf), 2: hub.generation, 6: self.rev}
            if hub.gpf:
                body[1] = _eui(hub.gpf)
            for key, v in ((3, hub.version), (4, hub.firmware), (5, hub.dcc)):
                if v is not None:
                    body[key] = v
            if hub.dcc and hub.clock_offset is not None:
                # The time read: the hub's UTC, kept from the DCC (a hub never served by the
                # DCC has no time to give).
                body[7] = int(time.time()) + hub.clock_offset
            return cmd | RESPONSE, body
        if cmd == CMD_WAN:
            body = {0: p.wan.connected}
            if p.wan.signal is not None and p.wan.connected:
                body[1] = p.wan.signal
            return cmd | RESPONSE, body
        if cmd == CMD_LOG:
            start = args.get(0) if isinstance(args, dict) else None
            if not isinstance(start, int) or start < 0:
                return ERROR, {0: E_BAD_REQUEST, 1: "LOG needs a start index"}
            page = [_log_entry(d) for d in p.devices[start:start + LOG_PAGE]]
            return cmd | RESPONSE, {0: len(p.devices), 1: page, 2: self.rev}
        if cmd == CMD_DEVICE:
            eui = args.get(0) if isinstance(args, dict) else None
            if not isinstance(eui, bytes) or len(eui) != 8:
                return ERROR, {0: E_BAD_REQUEST, 1: "DEVICE needs an 8-byte device id"}
            text = "-".join(f"{b:02X}" for b in eui)
            try:
                d = p.device(text)
            except PremisesError:
                return ERROR, {0: E_UNKNOWN_DEVICE, 1: f"{text} is not in the device log"}
            if not d.answers:
                return ERROR, {0: E_NOT_RESPONDING, 1: f"{text} does not answer on the HAN"}
            body = _log_entry(d)
            for key, v in ((4, d.serial), (5, d.smets), (6, d.mode), (7, d.firmware)):
                if v is not None:
                    body[key] = v
            return cmd | RESPONSE, body
        return ERROR, {0: E_UNKNOWN_COMMAND, 1: f"unknown command 0x{cmd:02x}"}


def _eui(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))


def _log_entry(d: Device) -> dict:
    e: dict = {0: _eui(d.eui), 1: d.type}
    if d.status is not None and d.type not in NO_STATUS:
        e[2] = d.status
    if d.mpxn is not None:
        e[3] = d.mpxn
    return e


def _console_eui(text: str) -> str:
    """An EUI-64 as the console takes it (XX-XX-XX-XX-XX-XX-XX-XX), or PremisesError."""
    parts = text.split("-")
    if len(parts) != 8 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise PremisesError(f"device id {text[:30]!r}: XX-XX-XX-XX-XX-XX-XX-XX")
    return text.upper()
