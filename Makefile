# Two entry points (see README): `make demo` and `make test`. Both install first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(VENV)/.installed

# torch goes in first, pinned, so the project's `torch>=` requirement is already satisfied
# and pip never reaches for a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# The main job on an embedded default: the project builds its own ResNet-18, exports it to
# ONNX, and imports it back (layer table, then a write-back round trip checked in onnxruntime).
demo: install
	$(BIN)/python -m deploy.models.export --model resnet18 --opset 17 --exporter torchscript -o build/resnet18.onnx
	$(BIN)/compress inspect build/resnet18.onnx
	$(BIN)/compress check build/resnet18.onnx -o build/resnet18-roundtrip.onnx

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/import_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
