# One-command entry points (see README.md). `make demo` and `make test` set everything up first.
VENV ?= .venv
BIN := $(VENV)/bin
# rules run `zar ...` and `snakemake ...`: the environment's programs come first on PATH
export PATH := $(abspath $(BIN)):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the published split sources: an offline mirror beside the repository when there is one,
# otherwise zar fetches the pinned files into resources/reference
SOURCES := $(if $(wildcard ../shared/reference),--sources ../shared/reference,)

.PHONY: setup demo report test test-quick test-slurm paper-dry-run lint audit schema clean-demo

## setup: system packages (ffmpeg, bsdtar, chromium for the report test), a virtual environment in .venv, zar and its pinned deps
setup: $(VENV)/.zar-installed

$(VENV)/.zar-installed: pyproject.toml
	@if ! command -v ffmpeg >/dev/null || ! command -v bsdtar >/dev/null \
		|| ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y ffmpeg libarchive-tools chromium chromium-driver; fi
	python3 -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]"
	touch $@

## demo: the whole workflow on synthetic videos with a tiny CLIP, on the CPU (six tables, every figure)
demo: setup
	$(BIN)/snakemake --cores all --directory demo all

## report: the demo's Snakemake report (tables and figures) in demo/results/report.html
report: demo
	$(BIN)/snakemake --directory demo --report results/report.html

## audit: check the committed split files (counts, disjointness, manifest, rebuild from sources)
audit: setup
	$(BIN)/zar splits audit $(SOURCES)

## schema: rewrite the generated parts of the config schema (the method's settings, the test-time methods' names)
schema: setup
	$(BIN)/python -m zar.plan.schema workflow/schemas/config.schema.yaml

## lint: the workflow's formatting (snakefmt) and snakemake's linter
lint: setup
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/snakemake --lint

## paper-dry-run: list every job the paper config's six tables and figures need (no data needed)
paper-dry-run: setup
	$(BIN)/snakemake -n all --quiet rules

## test: everything CI runs: audit, lint, paper dry run, the demo end to end, the test suite
test: audit lint paper-dry-run demo
	$(BIN)/pytest -q

## test-quick: only the test suite
test-quick: setup
	$(BIN)/pytest -q

## test-slurm: the demo through profiles/slurm on a single-node SLURM cluster started for the test (installs slurm, munge, MariaDB; root or sudo): zar check cluster, every job COMPLETED in sacct, tables identical to the local demo's
test-slurm: setup
	bash tests/cluster/slurm.sh

clean-demo:
	rm -rf demo/results demo/data demo/logs demo/benchmarks demo/splits demo/.snakemake
