# The two commands of the README. Each does its own set-up (tools/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test check integration browser bench-tests setup firmware bench clean

CHECK := not integration and not browser and not bench

demo: setup
	$(VENV)/bin/hil run --out out/demo

# Every tier: what .ci/run calls.
test: setup
	$(PY) -m pytest -n auto -q

# The fast loop (under a minute): pure logic, vectors, the firmware's fast tier, ruff and
# mypy (tests/test_house.py). docs/architecture.md "Tests in tiers".
check: setup
	$(PY) -m pytest -n auto -q -m "$(CHECK)"

integration: setup
	$(PY) -m pytest -n auto -q -m integration

browser: setup
	$(PY) -m pytest -q -m browser

bench-tests: setup
	$(PY) -m pytest -n auto -q -m bench

setup:
	@tools/setup.sh

firmware: setup
	$(PY) tools/build_firmware.py

# Every figure of the performance floors, with the floors beside them, in out/bench.json
# (tools/bench_record.py; about an hour on a 2-core machine). The other benchmarks in tools/
# are run on their own.
bench: setup
	$(PY) tools/bench_record.py --out out/bench.json

clean:
	rm -rf build out .pytest_cache .hypothesis
