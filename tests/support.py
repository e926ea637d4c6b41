"""Test support: the MicroPython runner behind the `mpy` fixture, and the shared
vectors (tests/vectors/*.json) in their JSON value form."""

from __future__ import annotations

import json
import math
from pathlib import Path
from collections.abc import Mapping
from typing import Any

import cbor2

from hil import micropython

TESTS = Path(__file__).resolve().parent
VECTORS = TESTS / "vectors"
MPY_HELPERS = TESTS / "mpy"
MPY_HELPERS_BUILT = TESTS.parent / "build" / "tests-mpy"  # the same, compiled (tools/build_firmware.py)


def _helpers(mpy: bool) -> list[Path]:
    # Compiled with the firmware when it runs compiled: a 16 KiB heap has no room to compile source.
    return [MPY_HELPERS_BUILT] if mpy else [MPY_HELPERS]


class MicroPythonRunner:
    """The `mpy` fixture: run code under micropython with firmware/ and the board lib
    on its path; returns what it printed, raises MicroPythonError with what it raised."""

    def __call__(self, code: str, *, heapsize: str | None = None, mpy: bool = False,
                 timeout: float = 60) -> str:
        return micropython.run(code, heapsize=heapsize, mpy=mpy, path=_helpers(mpy),
                               timeout=timeout).stdout

    def script(self, script: Path, *args: str, heapsize: str | None = None,
               mpy: bool = False) -> str:
        return micropython.run(script=script, args=list(args), heapsize=heapsize, mpy=mpy,
                               path=_helpers(mpy)).stdout

    def session(self, script: Path, **kw) -> micropython.Session:
        return micropython.Session(script, path=[MPY_HELPERS], **kw)


def load_tool(name: str):
    """A script of tools/ as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, TESTS.parent / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_firmware() -> None:
    micropython.build_firmware()


def load_vectors(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text())


def firmware_vector_results(kind: str) -> list[dict]:
    out = MicroPythonRunner().script(MPY_HELPERS / "vectors_fw.py", str(VECTORS), kind)
    return [json.loads(line) for line in out.splitlines()]


def value(v: Any) -> Any:
    if isinstance(v, dict):
        if "$bytes" in v:
            return bytes.fromhex(v["$bytes"])
        if "$tag" in v:
            return cbor2.CBORTag(v["$tag"][0], value(v["$tag"][1]))
        if "$map" in v:
            return {value(k): value(x) for k, x in v["$map"]}
        if "$float" in v:
            return float(v["$float"])
        return {k: value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [value(x) for x in v]
    return v


def same(a: Any, b: Any) -> bool:
    """Structural equality that holds for NaN, tells -0.0 from 0.0 and bool from int,
    and treats cbor2 6's tuples and frozendicts as lists and dicts."""
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, float) and isinstance(b, float)):
            return False
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and same(a[k], b[k]) for k in a)
    if isinstance(a, cbor2.CBORTag) and isinstance(b, cbor2.CBORTag):
        return a.tag == b.tag and same(a.value, b.value)
    return type(a) is type(b) and a == b
