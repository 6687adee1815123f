# salesinbox — the two commands: `make run` and `make test`.
# Every install step lives here: a fresh machine needs nothing but Python 3.11+, Node.js and npm.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DIST := src/salesinbox/web/static/dist
BUNDLE := $(DIST)/app.js
FRONTEND_SRC := $(wildcard frontend/src/*)
PO := $(wildcard src/salesinbox/locale/*/LC_MESSAGES/messages.po)
MO := $(PO:.po=.mo)
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres

.PHONY: run test pytest lint bench messages system-packages services clean

# Our own modules compiled to bytecode up front: where PYTHONDONTWRITEBYTECODE is set, Python would
# otherwise compile them again in every process (each CLI command, each sync worker: ~0.3 s of CPU).
run: $(VENV)/.installed $(BUNDLE) $(MO)
	$(BIN)/python -m compileall -q src
	$(BIN)/salesinbox migrate
	exec $(BIN)/salesinbox serve

test: system-packages services $(VENV)/.installed-dev $(BUNDLE) $(MO) lint pytest

# Every database-backed test runs on SQLite and on PostgreSQL (the `backend`
# fixture is parametrised over both); a throwaway PostgreSQL database is created
# for the run and dropped after it. pytest exits 5 when it collects no tests.
pytest: $(VENV)/.installed-dev $(BUNDLE) $(MO)
	$(BIN)/python -m compileall -q src
	SALESINBOX_TEST_DATABASES=sqlite,postgresql SALESINBOX_TEST_PG_URL=$(PG_URL) $(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

bench: system-packages services $(VENV)/.installed-dev $(BUNDLE) $(MO)
	$(BIN)/python -m bench

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.created pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# The browser bundle: rebuilt when missing or older than its sources or the lock file.
$(BUNDLE): $(FRONTEND_SRC) frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

%.mo: %.po $(VENV)/.installed
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@

# Extract user-facing strings into the catalog template and update every language.
# Text("...") is the services' and the domain's message (salesinbox/domain/text.py), translated where shown.
messages: $(VENV)/.installed-dev
	$(BIN)/pybabel extract -F babel.cfg -k Text -o src/salesinbox/locale/messages.pot src
	$(BIN)/pybabel update -i src/salesinbox/locale/messages.pot -d src/salesinbox/locale

# Debian packages the tests talk to: Dovecot (IMAP, LMTP, submission), Chromium and mbsync.
system-packages:
	@if ! command -v dovecot >/dev/null || [ ! -x /usr/lib/dovecot/lmtp ] || [ ! -x /usr/lib/dovecot/submission ] \
	    || [ ! -x /usr/bin/chromium ] || ! command -v mbsync >/dev/null; then \
	  echo "Installing Dovecot, Chromium and isync (mbsync: the sync bench's yardstick) from Debian..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    dovecot-imapd dovecot-lmtpd dovecot-submissiond chromium chromium-driver isync >/dev/null; \
	fi

# PostgreSQL normally runs already; start the local cluster if it does not answer.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start

clean:
	rm -rf $(VENV) frontend/node_modules $(DIST) $(MO)
