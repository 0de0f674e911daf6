# AnimeDataBase: every command a person or CI needs, each installing what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_PAGES ?= ../shared/fixtures/myanimelist

# The real pages recorded in $(SHARED_PAGES); a replay crawl of them makes the committed seeds.
# Their start URLs are listed once, in scrapy_crawler/replay_urls.txt.
REPLAY_URLS := $(shell grep -v '^\#' scrapy_crawler/replay_urls.txt | paste -sd, -)

.PHONY: install install-bench test lint typecheck pytest demo db layers crawl-replay bench bench-crawl \
	bench-generate bench-export bench-aging clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# checkov in a virtual environment of its own, from pyproject.toml's dependency group "checkov"
# (which says why), run offline: no update check, no download of Prisma Cloud's policy metadata.
CHECKOV_VENV := $(VENV)/checkov

$(CHECKOV_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --group checkov
	touch $@

lint: install $(CHECKOV_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/sqlfluff lint models macros snapshots tests/dbt
	CKV_SKIP_PACKAGE_UPDATE_CHECK=true $(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f infra/template.yaml

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

demo: install
	PATH="$(BIN):$$PATH" $(BIN)/animedb demo --shared-pages "$(SHARED_PAGES)"

# Build (or bring up to date) the database from seeds/ with dbt: seed, run, snapshot, test.
db: install
	$(BIN)/animedb db build

# Lambda layers and function code for AWS (infra/README.md), into infra/build/.
layers: install
	$(BIN)/python infra/build_layers.py

# Rebuild seeds/*.csv from the recorded pages (the exact command is in docs/crawler.md).
crawl-replay: install
	$(BIN)/animedb crawl -a replay=$(SHARED_PAGES) -a start_urls=$(REPLAY_URLS) -a out=seeds

install-bench: $(VENV)/.installed-bench

$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench: bench-crawl bench-generate bench-export bench-aging

bench-crawl: install
	$(BIN)/python -m bench.bench_crawl --pages "$(SHARED_PAGES)"

bench-generate: install
	$(BIN)/python -m bench.bench_generate

bench-export: install-bench
	$(BIN)/python -m bench.bench_export

# a lake's age: ROUNDS rounds of a small tick and a run, with maintenance and without
ROUNDS ?= 1000
bench-aging: install
	$(BIN)/python -m bench.bench_aging --rounds $(ROUNDS)

clean:
	rm -rf target logs dbt_packages lake .pytest_cache .mypy_cache .ruff_cache
