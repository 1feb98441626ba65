# ECG Insight — `make run` starts the app, `make test` runs the tests. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test bench mutate clean-env

$(VENV)/.stamp-run: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-run requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

run: $(VENV)/.stamp-run
	$(PY) -m streamlit run streamlit_app.py --server.port $(PORT)

test: $(VENV)/.stamp-dev
	$(PY) -m pytest

# the benchmarks (bench/*.py), one after the other; results in bench/results/latest.{jsonl,md}
bench: $(VENV)/.stamp-dev
	$(PY) bench/run_all.py

# mutation testing (not part of `make test`): mutmut mutates the modules listed in pyproject.toml [tool.mutmut]
# (splits/audit, heatmap mapping, bootstrap CIs, atomic writes), runs for each mutant only the selected tests that
# reach the mutated function, then prints the kill rate per module. Work folder: mutants/ (ignored by git).
MUTATE_JOBS ?= 2
mutate: $(VENV)/.stamp-dev
	$(PY) -m mutmut run --max-children $(MUTATE_JOBS)
	$(PY) scripts/mutate_report.py

clean-env:
	rm -rf $(VENV)
