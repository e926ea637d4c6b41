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

bench: setup
	$(PY) tools/bench_sign.py
	$(PY) tools/bench_verify.py
	$(PY) tools/bench_survey.py
	$(PY) tools/bench_bridge.py
	$(PY) tools/bench_agent.py
	$(PY) tools/bench_hil.py

clean:
	rm -rf build out .pytest_cache .hypothesis
