"""The shared vectors are what their generators make: a change to a generator (or to the
bridge code it calls) that is not followed by `python tools/make_vectors.py` and
`python tools/make_policy_vectors.py` fails here, instead of leaving both runtimes tested
against stale bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import load_tool

VECTORS = Path(__file__).resolve().parent / "vectors"
MADE = {**load_tool("make_vectors").files(), "policy.json": load_tool("make_policy_vectors").text()}


def test_every_vector_file_has_a_generator():
    assert sorted(p.name for p in VECTORS.glob("*.json")) == sorted(MADE)


@pytest.mark.parametrize("name", sorted(MADE))
def test_the_committed_vectors_are_the_generators_output(name):
    assert (VECTORS / name).read_text() == MADE[name], \
        f"tests/vectors/{name} is stale: run tools/make_vectors.py and tools/make_policy_vectors.py"
