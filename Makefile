# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export MPLBACKEND := Agg

.PHONY: install demo demo-images test lint bench clean

# Held-out images for `make demo`: the test split of the shapes data, drawn with the config's options.
define WRITE_DEMO_IMAGES
import yaml
from segkit.datasets.shapes import write_images
data = yaml.safe_load(open("configs/shapes_unet.yaml"))["data"]
options = {k: v for k, v in data.items() if k not in ("name", "train", "val")}
print(*write_images("runs/demo_images", count=4, split="test", **options), sep="\n")
endef
export WRITE_DEMO_IMAGES

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

# `make demo EPOCHS=2` trains a shorter run (the config's 6 epochs by default).
EPOCHS ?=
demo: $(STAMP)
	@echo "== training U-Net on the built-in synthetic shapes data (configs/shapes_unet.yaml)"
	$(BIN)/segkit train --config configs/shapes_unet.yaml $(if $(EPOCHS),--set train.epochs=$(EPOCHS))
	@$(MAKE) --no-print-directory demo-images
	@echo "== predicting them with the best checkpoint"
	$(BIN)/segkit predict --checkpoint runs/shapes_unet/best.pt runs/demo_images --out runs/demo_predictions
	@ls runs/demo_predictions

demo-images: $(STAMP)
	@echo "== writing held-out shapes images (test split, the config's data options) to runs/demo_images"
	$(BIN)/python -c "$$WRITE_DEMO_IMAGES"

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
