# qmap-bench: `make install`, then `make benchmark`. `make help` lists every target.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
QMAP := $(BIN)/qmap
DEMO_DIR ?= data/demo
RUNS_DIR ?= runs
SUITE ?= demo

export WANDB_MODE ?= offline
export NO_ALBUMENTATIONS_UPDATE := 1

# apt needs root: sudo when not root (CI runs as root).
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install install-browser test benchmark clean-runs

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-16s %s\n", $$1, $$2}'

install: ## Create .venv and install qmap-bench (+ dev extra) with the pinned versions of constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@echo "Installed into $(VENV). Next: make benchmark (or make test)."

install-browser: ## Debian's chromium (apt) + the dev extra's playwright, for the report.html browser test
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq chromium
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@echo "Chromium at $$(command -v chromium); the browser test runs (QMAP_REQUIRE_BROWSER=1 makes it mandatory)."

test: ## Run the test suite
	$(BIN)/python -m pytest

benchmark: ## Smoke benchmark: demo data (images + video) -> demo suite (every method, image and video rows) -> report
	@set -e; t0=$$(date +%s.%N); \
	echo "[benchmark] stage 1/3: demo data -> $(DEMO_DIR)"; \
	$(QMAP) data demo --out $(DEMO_DIR); t1=$$(date +%s.%N); \
	echo "[benchmark] stage 1/3 took $$(awk "BEGIN{printf \"%.1f\", $$t1-$$t0}") s"; \
	echo "[benchmark] stage 2/3: suite $(SUITE) -> $(RUNS_DIR)/$(SUITE)"; \
	$(QMAP) suite $(SUITE) --out $(RUNS_DIR); t2=$$(date +%s.%N); \
	echo "[benchmark] stage 2/3 took $$(awk "BEGIN{printf \"%.1f\", $$t2-$$t1}") s"; \
	echo "[benchmark] stage 3/3: report"; \
	$(QMAP) report $(RUNS_DIR)/$(SUITE); t3=$$(date +%s.%N); \
	echo "[benchmark] stage 3/3 took $$(awk "BEGIN{printf \"%.1f\", $$t3-$$t2}") s"; \
	echo "[benchmark] total $$(awk "BEGIN{printf \"%.1f\", $$t3-$$t0}") s. Report: $(RUNS_DIR)/$(SUITE)/report/report.html (tables, virtual-rater preference matrix, plots)"

clean-runs: ## Delete the demo runs (the demo data stays cached)
	rm -rf $(RUNS_DIR)/$(SUITE)
