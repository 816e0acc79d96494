# sac — build, test and demo entry points.
#
#   make demo    install what is missing, then show sac working
#   make test    install what is missing, then run the whole test suite
#
# Each step is idempotent and cheap when already done:
#   venv    .venv with python3 (>= 3.11) and `pip install -e '.[test]'`
#           (redone when pyproject.toml changes)
#   tools   the pinned Claude Code CLI, npm-installed into .tools/
#           (skipped when .tools/node_modules/.bin/claude already reports that version)
#   system  Debian's openssh-server, bubblewrap and Slurm (slurmctld slurmd slurm-client), installed
#           when root and missing

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed

CLAUDE_CODE_VERSION := 2.1.197
CLAUDE_CODE_PKG := @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
TOOLS := .tools
CLAUDE := $(CURDIR)/$(TOOLS)/node_modules/.bin/claude

PYTEST_ARGS ?=

.PHONY: help demo test venv tools system lint clean distclean

help:
	@echo "make demo       install what is missing, then run the demo"
	@echo "make test       install what is missing, then run the test suite (PYTEST_ARGS=... to narrow)"
	@echo "make venv       .venv with the package and its test extras"
	@echo "make tools      Claude Code CLI $(CLAUDE_CODE_VERSION) into $(TOOLS)/"
	@echo "make system     openssh-server, bubblewrap and Slurm (apt-get, when root)"
	@echo "make lint       import contracts (import-linter) and sac_node's Python 3.8 check (vermin)"
	@echo "make clean      remove .venv and caches;  make distclean  also removes $(TOOLS)/"

# --- Python environment ------------------------------------------------------------------

venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sac needs Python >= 3.11; $(PYTHON) is %d.%d (set PYTHON=python3.11 or newer)" % sys.version_info[:2])'
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

# --- Claude Code CLI (project-local) ------------------------------------------------------

tools:
	@if "$(CLAUDE)" --version 2>/dev/null | grep -q '^$(CLAUDE_CODE_VERSION) '; then \
	    exit 0; \
	fi; \
	if ! command -v npm >/dev/null; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        echo "npm missing: apt-get install nodejs npm"; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; \
	    else \
	        echo "npm is missing: install Node.js and npm (e.g. sudo apt-get install nodejs npm)" >&2; \
	        exit 1; \
	    fi; \
	fi; \
	if [ -L $(TOOLS) ] && [ ! -e $(TOOLS) ]; then rm -f $(TOOLS); fi; \
	mkdir -p $(TOOLS); \
	echo "npm install $(CLAUDE_CODE_PKG) into $(TOOLS)/"; \
	npm install --prefix $(TOOLS) --no-fund --no-audit --save-exact --loglevel=error $(CLAUDE_CODE_PKG); \
	version="$$("$(CLAUDE)" --version)"; \
	echo "$(TOOLS)/node_modules/.bin/claude: $$version"; \
	case "$$version" in "$(CLAUDE_CODE_VERSION) "*) ;; \
	    *) echo "expected Claude Code $(CLAUDE_CODE_VERSION), got: $$version" >&2; exit 1;; esac

# --- Debian packages ----------------------------------------------------------------------

system:
	@if [ -x /usr/sbin/sshd ] && command -v bwrap >/dev/null && [ -x /usr/sbin/slurmctld ] \
	    && [ -x /usr/sbin/slurmd ] && command -v sbatch >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server bubblewrap slurmctld slurmd slurm-client; \
	else \
	    echo "not root: please install openssh-server, bubblewrap and Slurm"; \
	    echo "(sudo apt-get install -y openssh-server bubblewrap slurmctld slurmd slurm-client);"; \
	    echo "tests that need them skip outside CI"; \
	fi

# --- The two commands ---------------------------------------------------------------------

test: venv tools system
	@export SAC_CLAUDE_BIN="$${SAC_CLAUDE_BIN:-$(CLAUDE)}"; \
	rc=0; $(VENV_PY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests, which counts as a failure" >&2; fi; \
	exit $$rc

demo: venv tools system
	SAC=$(CURDIR)/.venv/bin/sac bash examples/demo.sh

# --- Checks and cleanup -------------------------------------------------------------------

lint: venv
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/vermin -t=3.8- --no-tips --violations --eval-annotations sac_node

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build dist *.egg-info
	find . -path ./$(TOOLS) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(TOOLS)
