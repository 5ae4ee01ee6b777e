# Developer and CI entry points. Everything is installed into ./.venv and
# ./testserver/node_modules; `make clean` removes both.
#
#   make test       lint + format check + mypy --strict + pytest + docs (what .ci/run does)
#   make lint       ruff check and ruff format --check
#   make typecheck  mypy --strict src testserver
#   make pytest     only the test suite
#   make docs       the documentation site into site/ (mkdocs build --strict: warnings are errors)
#   make demo       run examples/demo.py (against $COUCHDB_URL if set, else a local pouchdb-server)
#   make bench-scale  bulk create and iterate 100,000 and 1,000,000 documents (this project)
#   make bench-attachments  a 1 GiB attachment up and down, streamed (time, peak RSS); against
#                   $COUCHDB_URL if set, else a disk-backed stand-in (testserver/attachment_server.py)
#   make bench-backup  backup and restore of 100,000 documents: aiocouch, couchbackup/couchrestore
#                   (npm, in bench/couchbackup) and the floor; results in bench/backup.md;
#                   BENCH_ARGS="--n 20000 --rounds 3" for a smaller run
#   make server     run a local pouchdb-server until Ctrl-C
#   make bench      benchmark against aiocouch 4.0.1, plain aiohttp and the other Python
#                   clients, each library in a venv of its own (bench/run.py; against
#                   $COUCHDB_URL if set); BENCH_N=1000000 for a bigger iterated database,
#                   BENCH_QUICK=1 for a smoke run, BENCH_ARGS for more options of bench/run.py
#   make clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NPM ?= npm
PYTEST_ARGS ?=
BENCH_N ?=
BENCH_ARGS ?=

# The test server helpers live in ./testserver, imported as a top-level package.
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))

# Stamp files: reinstall only when the inputs change.
VENV_STAMP := $(VENV)/.stamp-venv
TEST_STAMP := $(VENV)/.stamp-test
DEMO_STAMP := $(VENV)/.stamp-demo
BENCH_STAMP := $(VENV)/.stamp-bench
DOCS_STAMP := $(VENV)/.stamp-docs
NODE_STAMP := testserver/node_modules/.stamp-npm-ci

.PHONY: all test lint typecheck pytest demo server bench bench-scale bench-attachments node-modules clean docs

all: test

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	touch $@

$(TEST_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

$(DEMO_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/python -m pip install -e .
	touch $@

$(BENCH_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/python -m pip install -e '.[bench]'
	touch $@

$(DOCS_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/python -m pip install -e '.[docs]'
	touch $@

# --ignore-scripts (also set in testserver/.npmrc): leveldown loads its bundled prebuilt
# binary; the install scripts would only compile the unused sqlite3 (about 90 s).
$(NODE_STAMP): testserver/package.json testserver/package-lock.json
	cd testserver && $(NPM) ci --ignore-scripts --no-audit --no-fund
	touch $@

node-modules: $(NODE_STAMP)

test: lint typecheck pytest docs

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy --strict src testserver

pytest: $(TEST_STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Without COUCHDB_URL the demo starts its own pouchdb-server, which needs node_modules.
demo: $(DEMO_STAMP) $(if $(COUCHDB_URL),,$(NODE_STAMP))
	$(BIN)/python examples/demo.py

# aiocouch 4.0.1 and the other libraries go into bench/.venv-<name> (created by bench/run.py
# on first use, pinned versions from PyPI).
bench: $(BENCH_STAMP) $(if $(COUCHDB_URL),,$(NODE_STAMP))
	$(BIN)/python bench/run.py $(if $(BENCH_N),--n $(BENCH_N)) $(BENCH_ARGS)

# Bulk creation and iteration of this project at 100,000 and 1,000,000 documents (~5 min).
bench-scale: $(DEMO_STAMP) $(if $(COUCHDB_URL),,$(NODE_STAMP))
	$(BIN)/python bench/scale.py

# Streamed attachments of 1 GiB on both transports (~2 min); BENCH_ARGS="--size 256" for less.
bench-attachments: $(DEMO_STAMP)
	$(BIN)/python bench/attachments.py $(BENCH_ARGS)

# The pages are docs/*.md, the API reference comes from the docstrings (mkdocs.yml);
# NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2.0 says nothing about the site;
# no --quiet: it hides the warnings and with them the failure of --strict.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# couchbackup/couchrestore for bench-backup, in a folder of their own.
BACKUP_TOOLS_STAMP := bench/couchbackup/node_modules/.stamp-npm-ci
$(BACKUP_TOOLS_STAMP): bench/couchbackup/package.json bench/couchbackup/package-lock.json
	cd bench/couchbackup && $(NPM) ci --ignore-scripts --no-audit --no-fund
	touch $@

.PHONY: bench-backup
bench-backup: $(DEMO_STAMP) $(BACKUP_TOOLS_STAMP) $(if $(COUCHDB_URL),,$(NODE_STAMP))
	$(BIN)/python bench/backup.py $(BENCH_ARGS)

server: $(VENV_STAMP) $(NODE_STAMP)
	$(BIN)/python -m testserver.pouchdb_server

clean:
	rm -rf $(VENV) testserver/node_modules .mypy_cache .pytest_cache .ruff_cache \
		build dist src/*.egg-info bench/.venv-* site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
