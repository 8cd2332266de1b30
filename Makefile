# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint bench clean

$(BIN)/python:
	@echo "== creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall only when the package metadata changes; constraints.txt caps torch/torchvision
# at the builds available on the project's machines.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml constraints.txt
	@echo "== installing segkit with its dev extras (first run: a few minutes)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@echo "== training U-Net on the built-in synthetic shapes data (configs/shapes_unet.yaml)"
	$(BIN)/segkit train --config configs/shapes_unet.yaml
	@echo "== writing held-out shapes images to runs/demo_images"
	$(BIN)/python -m segkit.datasets.shapes --out runs/demo_images --count 4 --split test
	@echo "== predicting them with the best checkpoint"
	$(BIN)/segkit predict --checkpoint runs/shapes_unet/best.pt runs/demo_images --out runs/demo_predictions
	@ls runs/demo_predictions

test: $(STAMP)
	@echo "== running the test suite"
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check segkit tests bench examples
	$(BIN)/ruff format --check segkit tests bench examples
	$(BIN)/mypy segkit

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs
