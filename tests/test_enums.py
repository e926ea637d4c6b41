"""One spelling of every shared name and code: job types, device types, inventory statuses,
hub generations and the HAN link's commands and errors, in the firmware (under the real
micropython, as .mpy), the bridge and the bench, against tests/vectors/enums.json, which
tools/make_vectors.py writes from the specifications."""

from __future__ import annotations

import json
from pathlib import Path

from companion.wire import event as bridge_event
from hil import hub, premises

from .support import load_tool, load_vectors

V = load_vectors("enums")


def test_the_vector_file_is_what_the_generator_writes():
    assert V == json.loads(json.dumps(load_tool("make_vectors").enum_vectors()))


def test_the_bridge_spells_them_as_the_vectors():
    assert list(bridge_event.EVENT_TYPES) == V["job_types"]
    assert list(bridge_event.DEVICE_TYPES) == V["device_types"]
    assert list(bridge_event.STATUSES) == V["statuses"]
    assert list(bridge_event.GENERATIONS) == V["generations"]


def test_the_bench_spells_them_as_the_vectors():
    assert list(premises.DEVICE_TYPES) == V["device_types"]
    assert list(premises.STATUSES) == V["statuses"]
    assert {n: getattr(hub, f"CMD_{n}") for n in V["han_commands"]} == V["han_commands"]
    assert {n: getattr(hub, n) for n in V["han_frame_types"]} == V["han_frame_types"]
    assert {n: getattr(hub, f"E_{n}") for n in V["han_errors"]} == V["han_errors"]


def test_the_firmware_spells_them_as_the_vectors(mpy):
    out = mpy("""
import json
from agent import event, jobs, link
from agent.console import JOB_TYPES
print(json.dumps({
    "job_types": list(event.TYPES), "jobs_job_types": list(jobs.TYPES), "console_job_types": list(JOB_TYPES),
    "device_types": list(event.DEVICE_TYPES), "statuses": list(event.STATUSES),
    "generations": list(event.GENERATIONS),
    "han_commands": {n: getattr(link, "CMD_" + n) for n in %s},
    "han_frame_types": {n: getattr(link, n) for n in %s},
    "han_errors": {n: getattr(link, "E_" + n) for n in %s}}))
""" % (json.dumps(list(V["han_commands"])), json.dumps(list(V["han_frame_types"])),
       json.dumps(list(V["han_errors"]))), mpy=True)
    got = json.loads(out)
    assert got.pop("jobs_job_types") == got.pop("console_job_types") == V["job_types"]
    assert got == {k: V[k] for k in got}


def test_the_firmware_defines_the_job_types_once():
    """agent/kinds.py is their one home in the firmware; the bridge's is companion.event."""
    fw = Path(__file__).resolve().parent.parent / "firmware" / "agent"
    homes = [p.name for p in sorted(fw.glob("*.py")) if '("install", "commission"' in p.read_text()]
    assert homes == ["kinds.py"]
