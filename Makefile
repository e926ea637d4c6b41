# The two commands of the README. Each does its own set-up (tools/setup.sh).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test setup firmware bench clean

demo: setup
	$(VENV)/bin/hil run --out out/demo

test: setup
	$(PY) -m pytest -n auto -q

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
