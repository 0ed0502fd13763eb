# The two commands of the README: `make run` and `make test`. Both build the virtual
# environment from requirements.lock on first use, so a fresh machine needs only Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum requirements.lock | cut -d' ' -f1)

.PHONY: run test quick lint typecheck unit fuzz histories bench bench-latency bench-ingest bench-segments bench-fanout bench-sends bench-exports bench-simulate bench-import bench-costs bench-herd bench-keys clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.lock
	# The example custom element (an entry point of flowline.elements) the tests use; built in
	# place with the locked setuptools and wheel, so nothing is fetched for the build.
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps \
		-e examples/flowline_element_example
	# Flowline itself, in place: the `flowline` command (.venv/bin/flowline, docs/cli.md).
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(BIN)/flowline run

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# The tests that need no Temporal server (pure code, SQLite, PostgreSQL when it is reachable, the
# replay of recorded histories), on both cores: 928 tests in ~38 s on a quiet 2-core machine (~49 s
# on one). tests/conftest.py marks every test whose fixtures start Temporal `temporal` (and modules
# that start servers or subprocess stacks carry the mark themselves); `make test` runs them all.
quick: $(STAMP)
	$(BIN)/pytest -m "not temporal" -n 2

# schemathesis over the whole OpenAPI document (SQLite and PostgreSQL) with 100 examples per
# operation and longer stateful runs; `make test` runs the same with 25 (tests/test_openapi_fuzz.py).
fuzz: $(STAMP)
	FLOWLINE_FUZZ_EXAMPLES=100 $(BIN)/pytest -p no:cacheprovider tests/test_openapi_fuzz.py

# Record the Temporal histories of new scenarios for the replay test; existing files are kept
# (tests/record_histories.py's docstring; patches and their histories: docs/patches.md).
histories: $(STAMP)
	$(BIN)/python -m tests.record_histories

bench: $(STAMP)
	$(BIN)/python bench/journeys.py --database sqlite
	$(BIN)/python bench/journeys.py --database postgres

# POST /v1/events -> webhook received, on the `make run` stack, at 20 and 100 events/s (SQLite).
# An export step's cost to a journey (against update_variable, alternating rounds) and the
# batcher's records/s into the fake CleverTap, on SQLite and PostgreSQL.
bench-exports: $(STAMP)
	$(BIN)/python bench/exports.py --database sqlite
	$(BIN)/python bench/exports.py --database postgres

# `flowline simulate` of a flow with a 30-day pause and a 7-day wait (target: under 5 s).
bench-simulate: $(STAMP)
	$(BIN)/python bench/simulate.py --runs 5

# `flowline import profiles` of a generated 1,000,000-row CSV into a fresh database on SQLite and
# PostgreSQL: without triggers, then with one running profile_change flow that 10 % of the rows start.
bench-import: $(STAMP)
	$(BIN)/python bench/import.py --database sqlite postgres

bench-latency: $(STAMP)
	$(BIN)/python bench/latency.py --database sqlite

# 200,000 events over HTTP in batches of 500 with five event-triggered flows, stored and routed,
# on SQLite and on PostgreSQL (a schema of its own in the `test` database on 127.0.0.1:5432).
bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest.py --database sqlite postgres

# A three-condition segment counted over 1M profiles and 10M events on PostgreSQL, and one
# profile evaluated; the database (flowline_bench_segments) is filled once and reused.
bench-segments: $(STAMP)
	$(BIN)/python bench/segments.py

# One audience run over 50,000 profiles (PostgreSQL) against bare Temporal starts, same dev server.
bench-fanout: $(STAMP)
	$(BIN)/python bench/fanout.py --database postgres

# Messages per second through journeys (POST /v1/events -> send step -> aiosmtpd; webhook step ->
# HTTP sink) against bare Temporal activities making the same SMTP / HTTP call, same dev server.
bench-sends: $(STAMP)
	$(BIN)/python bench/sends.py --messages 2000 --concurrency 50

# What one journey costs against a bare workflow: CPU per process (API, worker, dev server,
# PostgreSQL backends), SQL statements and transactions, history events, commands and bytes, on
# SQLite and PostgreSQL (500 of each after a warm-up; a few minutes). With py-spy (not in the lock)
# the API's and the worker's samples by library: PY_SPY=/path/to/py-spy make bench-costs.
bench-costs: $(STAMP)
	$(BIN)/python bench/costs.py --database sqlite postgres $(if $(PY_SPY),--py-spy $(PY_SPY))

# 10,000 journeys whose pauses end at one instant, each then sending a webhook to a local sink,
# against 10,000 bare timers followed by the same POST, one after the other (PostgreSQL store;
# --safety 3: the warm-up's start rate overstates that of the later thousands).
bench-herd: $(STAMP)
	$(BIN)/python bench/herd.py --journeys 10000 --safety 3 --database postgres

# What reading the API key on every request costs (revocation at once), against the old 30 s cache.
bench-keys: $(STAMP)
	$(BIN)/python bench/keys.py --database sqlite postgres

clean:
	rm -rf $(VENV)
