# nanoVPT's make targets.
#   make toy            the toy pipeline: stages 01 -> 05 on toycraft, each reading the one before it, then
#                       runs/report.md
#   make test           the test suite, but for its multi-process (torchrun) runs: make test-slow runs those; CI
#                       runs both
#   make parity         the same results as OpenAI's own code: VPT_REPO=/path/to/Video-Pre-Training make parity
#   make gpu-check      the toy chain on a GPU at default sizes, then the 1x/4x training step (tools/gpu_check.py)
#   make paper-figures  the ablations behind the paper's figures, on top of make toy (hours); then
#                       `python report.py --docs` writes docs/results.md. PAPER_FIGURES_FLAGS="--figure 7 --jobs 2":
#                       one figure's runs, two at a time
#   make clean          remove runs/ and data/
# Each first builds .venv with Python 3.10+ and the packages in requirements.txt; re-running skips the install.
#
# Torch: where .venv has none, `pip install $(TORCH)` puts it in first. The default is the pinned CPU build that
# lies on our CI machines; on your own machine pick the build you want, e.g.
#   make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu"     (CPU only, small download)
#   make test TORCH="torch"                                                       (PyPI default, CUDA on Linux)

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-slow parity gpu-check toy paper-figures clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "nanoVPT needs Python 3.10+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install --no-compile $(TORCH)
	$(PY) -m pip install --no-compile -r requirements.txt
	@# the bytecode, on every core (pip compiles file by file); the files it cannot compile are written for a newer
	@# Python (torch's tests), and are passed over as pip would
	@$(PY) -m compileall -qq -j 0 $(VENV)/lib || true
	@touch $@

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

gpu-check: $(STAMP)
	$(PY) tools/gpu_check.py $(GPU_CHECK_FLAGS)

# OpenAI's code is imported from your checkout at test time (git clone https://github.com/openai/Video-Pre-Training);
# attrs is the one package of theirs the comparison needs. Without VPT_REPO the tests report themselves skipped.
parity: $(STAMP)
	@$(PY) -c 'import attr' 2>/dev/null || $(PY) -m pip install -q attrs
	VPT_REPO="$(VPT_REPO)" $(PY) -m pytest -q -rs tests/test_openai_parity.py

# make toy: each stage is a Make target, the file it writes last (so an interrupted stage has not written it). Make's
# own rule decides what is up to date: a stage runs again when that file is missing or older than the stage's script,
# common.py, worlds.py, toycraft.py or the stage before it; the ones after it follow. A stage that runs again starts
# over (--overwrite: the stages refuse to replace a run in their --out unless told to). Recorded toy data is recorded
# again only when toycraft.py is newer than it. Each stage's wall time goes to runs/times.tsv, and report.py writes
# runs/report.md at the end.
SHARED := common.py worlds.py toycraft.py
IDM := runs/idm/metrics.json
FILTER := runs/filter/metrics.json
LABEL := runs/label/metrics.json
BC := runs/bc/metrics.json
RL := runs/rl/metrics.json

# $(call stage,name,command): run it, log its wall time, stop make toy with a clear line if it fails
define stage
	@mkdir -p runs
	@echo "=== make toy: $(1)"
	@start=$$(date +%s); $(2) || { rc=$$?; echo "=== make toy: $(1) failed (exit $$rc)"; exit $$rc; }; \
		printf '%s\t%s\n' $(1) $$(( $$(date +%s) - start )) >> runs/times.tsv
endef
# toy data recorded by an older toycraft.py is recorded again (only toycraft's own recordings are removed: contractors'
# toy-<player>-NNNNNN.*, the toy internet's web-NNNNNN.*)
define stale_toy_data
	@if [ -d $(1) ] && [ toycraft.py -nt $(1) ]; then echo "toycraft.py changed: recording $(1) again"; \
		rm -f $(1)/toy-* $(1)/web-[0-9][0-9][0-9][0-9][0-9][0-9].*; fi
endef

toy: runs/report.md

$(IDM): 01_idm.py $(SHARED) | $(STAMP)
	$(call stale_toy_data,data/contractor)
	$(call stage,01_idm,$(PY) 01_idm.py --env toy --overwrite)

$(FILTER): 02_filter.py $(SHARED) | $(STAMP)
	$(call stale_toy_data,data/web)
	$(call stage,02_filter,$(PY) 02_filter.py --env toy --overwrite)

$(LABEL): 03_label.py $(SHARED) $(IDM) $(FILTER)
	$(call stage,03_label,$(PY) 03_label.py --env toy)

$(BC): 04_bc.py $(SHARED) $(LABEL)
	$(call stage,04_bc,$(PY) 04_bc.py --env toy --overwrite)

$(RL): 05_rl.py $(SHARED) $(BC)
	$(call stage,05_rl,$(PY) 05_rl.py --env toy --overwrite)

runs/report.md: report.py $(IDM) $(FILTER) $(LABEL) $(BC) $(RL)
	$(call stage,report,$(PY) report.py)
	@echo "=== make toy: done; open runs/report.md"

# the ablations behind the paper's figures, on top of make toy's runs (hours on 2 cores; resumable)
paper-figures: toy
	$(PY) report.py paper-figures $(PAPER_FIGURES_FLAGS)

# start over: the recorded toy data and every run
clean:
	rm -rf runs data
