# The README's two commands: `make demo` (the main job, offline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vlmocr-installed
DEMO_OUT ?= runs/demo

.PHONY: demo test test-fast venv clean

$(STAMP): pyproject.toml scripts/setup_venv.sh scripts/torchvision_cpu_fix.sh
	bash scripts/setup_venv.sh $(VENV)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vlmocr demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest

# Unit tests only (no vLLM server, no LLaMA-Factory venv).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not vllm and not llamafactory and not slow"

clean:
	rm -rf runs .pytest_cache
