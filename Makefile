# nanoVPT: two commands.
#   make test   runs the test suite
#   make toy    runs the toy pipeline, stages 01 -> 05 on toycraft, each reading the one before it
# Both first build .venv with Python 3.10+ and the packages in requirements.txt; re-running skips the install.
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
STAGES := 01_idm 02_filter 03_label 04_bc 05_rl

.PHONY: test toy clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "nanoVPT needs Python 3.10+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	@$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install $(TORCH)
	$(PY) -m pip install -r requirements.txt
	@touch $@

test: $(STAMP)
	$(PY) -m pytest -q tests

toy: $(STAMP)
	@for stage in $(STAGES); do \
		echo "=== make toy: $$stage.py"; \
		$(PY) $$stage.py --env toy; rc=$$?; \
		if [ $$rc -ne 0 ]; then echo "=== make toy: $$stage.py failed (exit $$rc)"; exit $$rc; fi; \
	done

# start over: the recorded toy data and every run
clean:
	rm -rf runs data
