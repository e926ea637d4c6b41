# The flag a job will give, predicted on site with the bridge's rules (companion/policy.py
# `observe`, docs/flag-policy.md). The rules live in agent.jobs, which every job loads
# anyway (one module load fewer in the 64 KiB heap); this is their name for callers and
# tests. tests/vectors/policy.json, made from the CPython policy, holds both runtimes to it.
from agent.jobs import missing, observe  # noqa: F401
from agent.words import WORDS  # noqa: F401  (the display words of each reason code)
