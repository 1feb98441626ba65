# ECG Insight — `make run` starts the app, `make test` runs the tests. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
# the address `make run` listens on: localhost only unless HOST=0.0.0.0 (see the README's threat model)
HOST   ?= 127.0.0.1

.PHONY: run share test bench mutate clean-env

$(VENV)/.stamp-run: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-run requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

run: $(VENV)/.stamp-run
	$(PY) -m streamlit run streamlit_app.py --server.address $(HOST) --server.port $(PORT)

# sharing mode (README "Sharing mode (login)"): every interface, every session logs in. The auth file
# (ECG_INSIGHT_AUTH_FILE, default <ECG_INSIGHT_HOME or .ecg_insight>/auth.yaml, mode 0600, never committed) is made
# on first use with a viewer and an editor whose random passwords are printed once. `make share HOST=127.0.0.1`:
# the login on localhost only (behind a reverse proxy on this machine).
share: HOST = 0.0.0.0
share: $(VENV)/.stamp-run
	$(PY) -m ecg_core auth init --if-missing
	ECG_INSIGHT_SHARE=1 $(MAKE) --no-print-directory run HOST=$(HOST) PORT=$(PORT)

test: $(VENV)/.stamp-dev
	$(PY) -m pytest

# the benchmarks (bench/*.py), one after the other; results in bench/results/latest.{jsonl,md}
bench: $(VENV)/.stamp-dev
	$(PY) bench/run_all.py

# mutation testing (not part of `make test`): mutmut mutates the modules listed in pyproject.toml [tool.mutmut]
# (splits/audit, heatmap mapping, bootstrap CIs, atomic writes), runs for each mutant only the selected tests that
# reach the mutated function, then prints the kill rate per module. Work folder: mutants/ (ignored by git).
# One module only (re-runs its mutants, keeps the others' results): make mutate MODULE=ecg_core/ml/evaluate.py
MUTATE_JOBS ?= 2
MODULE ?=
mutate: $(VENV)/.stamp-dev
	$(PY) scripts/mutate_report.py --prepare
	$(PY) -m mutmut run --max-children $(MUTATE_JOBS) $(if $(MODULE),"$(subst /,.,$(MODULE:.py=)).*")
	$(PY) scripts/mutate_report.py

clean-env:
	rm -rf $(VENV)
