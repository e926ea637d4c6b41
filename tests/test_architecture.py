"""The house's guards (docs/architecture.md): the layers' import order, SQL only in the store,
and short functions."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"wire": 0, "store": 1, "service": 2, "reconcile": 2, "surfaces": 3}
MAX_LINES = 80


def _layer(module: str) -> tuple[int, str] | None:
    parts = module.split(".")
    if parts[0] != "companion":
        return None
    if len(parts) == 1 or parts[1] not in LAYERS:
        return 0, "core"
    return LAYERS[parts[1]], parts[1]


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def _imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def test_no_module_imports_upward_across_the_layers():
    wrong = []
    for path in (ROOT / "companion").rglob("*.py"):
        me = _layer(_module(path))
        assert me is not None
        for target in _imports(ast.parse(path.read_text())):
            it = _layer(target)
            if it is None:
                continue
            if it[0] > me[0] or (it[0] == me[0] == 2 and it[1] != me[1]):
                wrong.append(f"{_module(path)} imports {target}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_no_relative_imports_hide_the_layers():
    for path in (ROOT / "companion").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.relative_to(ROOT)}:{node.lineno}: a relative import"


_STORE_TABLES = ("events", "event_mpxns", "flags", "outbox", "dtc_files", "keys", "api_tokens", "rejections",
                 "rejection_counts", "suspicious", "sequences", "replicas", "console_sessions", "schema_version")


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
            out.append((node.lineno, text))
    return out


def _is_sql(text: str) -> bool:
    t = " ".join(text.split())
    return bool(re.match(r"^(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE (TABLE|INDEX)|ALTER TABLE|DROP TABLE|"
                         r"WITH \w+|SET LOCAL|PRAGMA|BEGIN|COMMIT|ROLLBACK)\b", t)) or bool(
        re.search(r"\b(SELECT .+ FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM)\b", t))


def test_no_sql_outside_the_store():
    """The store's SQL lives in companion/store/ alone; the bench (hil/) reads the store through
    its methods too. reconcile/ and the triage of a file (service/triage_run.py) speak DuckDB
    over their own tables and work files (judged, evidence, alerts.parquet, ...), never one of
    the store's."""
    wrong = []
    for path in [*(ROOT / "companion").rglob("*.py"), *(ROOT / "hil").rglob("*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("companion/store/"):
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            if not _is_sql(text):
                continue
            if rel.startswith(("companion/reconcile/", "companion/service/triage_run.py")) and not any(
                    re.search(rf"\b(FROM|JOIN|INTO|UPDATE)\s+{t}\b", text) for t in _STORE_TABLES):
                continue
            wrong.append(f"{rel}:{line}: {' '.join(text.split())[:80]}")
    assert not wrong, "\n".join(wrong)


def test_no_function_is_longer_than_80_lines():
    long = []
    for folder in ("companion", "firmware", "hil"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = (node.end_lineno or node.lineno) - node.lineno + 1
                    if n > MAX_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "\n".join(long)


def test_the_guards_see_what_they_guard():
    """Each guard fails on what it is meant to catch (a guard that cannot fail is no guard)."""
    assert _is_sql("SELECT seq, body FROM outbox WHERE mpxn=?")
    assert _is_sql("INSERT INTO flags (mpxn) VALUES (?)")
    assert not _is_sql("select the meter point from the list")
    assert _layer("companion.surfaces.api") == (3, "surfaces")
    assert _layer("companion.policy") == (0, "core")
    tree = ast.parse("from companion.surfaces.api import Api\n")
    assert "companion.surfaces.api.Api" in _imports(tree)


def test_the_firmware_build_is_exactly_the_manifest():
    """firmware/manifest.py says what ships; the build holds those modules and no other, and
    the test-only modules live under tests/."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_firmware", ROOT / "tools" / "build_firmware.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    listed = {Path(f).with_suffix("").as_posix() for f in tool.manifest()["files"]}
    tool.build(ROOT / "build" / "firmware")
    built = {p.relative_to(ROOT / "build" / "firmware").with_suffix("").as_posix()
             for p in (ROOT / "build" / "firmware" / "agent").glob("*.mpy")}
    assert built == listed
    sources = {p.relative_to(ROOT / "firmware").with_suffix("").as_posix()
               for p in (ROOT / "firmware" / "agent").glob("*.py")}
    assert sources == listed, sources ^ listed  # nothing in firmware/agent that does not ship
    assert tool.manifest()["require"] == []  # no library from outside: the MQTT client is agent/mqttc.py


def _firmware_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "agent":
                names.update(f"agent.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_the_firmware_has_no_import_cycles_and_nothing_imports_its_main():
    """agent.main runs the job's stages; the stages import what they share from agent.stage,
    never from agent.main (the cycles main <-> console/jobrun/saving are gone)."""
    agent = ROOT / "firmware" / "agent"
    graph = {f"agent.{p.stem}": {m for m in _firmware_imports(p) if m.startswith("agent.")}
             for p in agent.glob("*.py") if p.stem != "__init__"}
    importers = sorted(m for m, deps in graph.items() if "agent.main" in deps)
    assert not importers, f"modules importing agent.main: {importers}"

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for dep in graph.get(node, ()):
                if dep == start:
                    return path + [dep]
                if dep not in path:
                    stack.append((dep, path + [dep]))
        return None

    cycles = [c for m in graph if (c := cycle_from(m))]
    assert not cycles, f"import cycles: {cycles[:3]}"
