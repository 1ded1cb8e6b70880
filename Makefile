# stalwart-py: `make run` and `make test` set up .venv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# make run CONFIG=var/pebble.toml: another configuration (docs/tls.md, ACME with Pebble)
CONFIG ?= config/local.toml

.PHONY: run test test-workers test-blobs test-store lint format reference bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "stalwart-py needs Python 3.11 or newer; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The project's own bytecode first (pip compiled the dependencies at install): the editable
# install is otherwise compiled again at every start where PYTHONDONTWRITEBYTECODE is set, and
# at the first start elsewhere (bench/startup.py, cold vs warm). Up-to-date files are skipped.
run: $(STAMP)
	$(BIN)/python -m compileall -q stalwart_py protocols
	$(BIN)/stalwart-py serve --config $(CONFIG)

# The protocol tests again with every server they start running two worker processes
# (pytest --server-workers 2, docs/development.md): a fast part after `make test`, all of
# them in `.ci/run` (`make test-workers`).
WORKERS_TESTS := $(wildcard tests/integration/test_smtp_*.py tests/integration/test_lmtp_*.py \
	tests/integration/test_imap_*.py tests/integration/test_pop3*.py \
	tests/integration/test_managesieve_*.py tests/integration/test_http_*.py)
WORKERS_FAST := tests/integration/test_smtp_session.py tests/integration/test_imap_session.py

# The protocol tests again with every server on PostgreSQL (pytest --store-backend postgresql:
# a database of its own per server, docs/development.md). `make test` runs STORE_FAST (102
# tests: 34-48 s at load 1.7, where the same on SQLite take 22 s); `.ci/run` all of them
# (`make test-store`, 330 tests: 2 min 51 s at load 2).
STORE_FAST := tests/integration/test_smtp_session.py tests/integration/test_lmtp_delivery.py \
	tests/integration/test_imap_session.py tests/integration/test_imap_messages.py \
	tests/integration/test_imap_fetch.py tests/integration/test_imap_idle.py \
	tests/integration/test_imap_notify.py tests/integration/test_pop3.py \
	tests/integration/test_managesieve_protocol.py tests/integration/test_http_api.py \
	tests/integration/test_sieve_delivery.py
STORE_TESTS := $(WORKERS_TESTS) $(wildcard tests/integration/test_delivery.py \
	tests/integration/test_queue_end_to_end.py tests/integration/test_sieve_delivery.py)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q --server-workers 2 $(WORKERS_FAST)
	$(BIN)/python -m pytest -q --store-backend postgresql $(STORE_FAST)

test-store: $(STAMP)
	$(BIN)/python -m pytest -q --store-backend postgresql $(STORE_TESTS)

test-workers: $(STAMP)
	$(BIN)/python -m pytest -q --server-workers 2 $(WORKERS_TESTS)

# The tests that store and read message bodies over the protocols, with the bodies in files,
# then in S3 (a SeaweedFS the tests start): docs/message-bodies.md. In `.ci/run`. (The blob
# backends' own tests run in `make test`; the whole protocol part twice more would take .ci/run
# past its 30 minutes.)
BLOBS_TESTS := $(wildcard tests/integration/test_smtp_session.py tests/integration/test_lmtp_delivery.py \
	tests/integration/test_delivery.py tests/integration/test_imap_fetch.py \
	tests/integration/test_imap_messages.py tests/integration/test_imap_multiappend.py \
	tests/integration/test_imap_catenate.py tests/integration/test_pop3.py \
	tests/integration/test_pop3_world.py tests/integration/test_queue_end_to_end.py \
	tests/integration/test_sieve_delivery.py)

test-blobs: $(STAMP)
	$(BIN)/python -m pytest -q --blob-backend filesystem $(BLOBS_TESTS)
	$(BIN)/python -m pytest -q --blob-backend s3 $(BLOBS_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# docs/configuration-reference.md and docs/http-api-reference.md, generated from the code
reference: $(STAMP)
	$(BIN)/stalwart-py reference --docs docs

BENCH_STAMP := $(VENV)/.installed-bench

# The peers written in Python (uvicorn); the others come from Debian: see each script's docstring.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache
