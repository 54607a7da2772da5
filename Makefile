# Two entry points (see README): `make demo` and `make test`. Both install first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test corpus corpus-extended bench bench-slr bench-olmp bench-seeds bench-channels bench-tasks clean

install: $(VENV)/.installed

# torch goes in first, pinned, so the project's `torch>=` requirement is already satisfied
# and pip never reaches for a CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# The main job on the embedded default: prune the committed LeNet-5 with SLR (trained on scikit-learn's
# digits, which its metadata names as its data) and report accuracy, sparsity and latency.
demo: install
	$(BIN)/compress examples/lenet5_digits.onnx --method slr

test: install
	$(BIN)/python -m pytest -q

# The third-party model corpus (tests/corpus): fetch it into the cache ahead of the tests (they
# also fetch on demand), and run the extended tier too, writing docs/models.md from the results.
corpus: install
	$(BIN)/python tests/corpus/gather.py

corpus-extended: install
	rm -rf .corpus-results
	COMPRESSOR_CORPUS_TIER=all COMPRESSOR_CORPUS_RESULTS=.corpus-results $(BIN)/python -m pytest -q tests/test_corpus.py; \
	status=$$?; $(BIN)/python tests/corpus/models_doc.py .corpus-results; exit $$status

bench: install
	$(BIN)/python bench/import_overhead.py

# About 10 minutes on 2 cores; needs ../shared/data/mnist_5k.csv.gz (or COMPRESSOR_SHARED_DATA).
bench-slr: install
	$(BIN)/python bench/slr_admm.py

# About 30 minutes on 2 cores; same data as bench-slr.
bench-olmp: install
	$(BIN)/python bench/olmp_lenet.py

# About 70 minutes on 2 cores (measured as three one-seed processes sharing them with other runs);
# same data as bench-slr: magnitude, ADMM, SLR and OLMP over three seeds
# (split, dense model and run), their defaults and their tuned settings, and a verdict on each claim.
bench-seeds: install
	$(BIN)/python bench/method_seeds.py --json docs/results/method_seeds.json

# About 6-8 minutes on 2 cores; same data as bench-slr. Installs the `bench` extra (Torch-Pruning,
# pinned in constraints.txt; the script skips its rows without it).
bench-channels: install
	$(BIN)/pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/channel_pruning.py --json docs/results/channel_pruning.json

# About 45 minutes on 2 cores: generated TuSimple and COCO data, the UFLD- and YOLO-style reference
# networks trained on them, SLR at 80% / 2:4 / half the multiply-adds, task metrics and latency.
bench-tasks: install
	$(BIN)/python bench/task_models.py --json docs/results/task_models.json

clean:
	rm -rf $(VENV) build *.egg-info
