# Two commands: `make demo` and `make test`. Each sets up .venv when it is missing.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lrkit-installed
TORCH  := torch==2.13.0

.PHONY: demo test lint format bench bench-suggest bench-tune setup clean browser docs wheel-smoke

setup: $(STAMP)

# torch first, pinned: the CPU build lies on this machine's disk; letting pip choose would
# pull a CUDA build of several GB. Then the project and its extras (Lightning, transformers,
# accelerate, Keras, the trackers...) with torch still pinned on the same command line, so no
# extra's requirement can make pip swap torch.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet $(TORCH) -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lrkit demo -o lrkit-demo

# The tests include tests/test_docs_site.py, which builds the docs site with --strict and
# opens it in headless Chromium: the docs cannot rot unnoticed.
test: lint browser
	$(PY) -m pytest

# The documentation site (MkDocs Material + mkdocstrings) into site/; a broken link, a missing
# reference or a failing figure fails the build. `$(VENV)/bin/mkdocs serve` to browse it.
docs: $(STAMP) browser
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The release check: sdist + wheel, twine check, the wheel installed into a fresh venv (torch
# first) running import lrkit, lrkit --help, lrkit demo --quick. CI runs it after `make test`.
wheel-smoke: $(STAMP)
	.ci/wheel-smoke $(PY)

# The report tests look at pages in headless Chromium (Debian's chromium + chromium-driver).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks docs/hooks
	$(VENV)/bin/ruff format --check src tests benchmarks docs/hooks
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests benchmarks docs/hooks
	$(VENV)/bin/ruff format src tests benchmarks docs/hooks

# Benchmarks compare against peers (Lightning, torch-lr-finder): the `bench` extra.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/bench_finder.py
	$(PY) benchmarks/bench_schedules.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_vectorized.py
	$(PY) benchmarks/bench_finetune.py

# Suggestion quality on the 16-task suite: oracle grids (cached in benchmarks/results/suggest/),
# range tests recorded once, LR-free peers trained, rules scored held out (leave-one-task-out);
# writes benchmarks/results/suggest.{json,md,png} and docs/data/suggest_summary.json. Long
# (about an hour of CPU the first time): run it niced; a rerun trains only what is missing.
bench-suggest: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	nice -n 19 $(PY) -m benchmarks.suggest.run
	$(PY) -m benchmarks.suggest.fit

# lrkit.tune on the whole suite (after bench-suggest: its oracle scores every method), two
# processes (one per seed), then the pruning replay, the cost at longer budgets and the
# table: benchmarks/results/tune{,_policy,_cost}.md and tune.png. About 50 min of 2 cores.
TUNE_RUN = nice -n 19 $(PY) -m benchmarks.bench_tune --tasks all \
	--protocols constant,one_cycle,warmup_cosine
bench-tune: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(TUNE_RUN) --seeds 0 & pid=$$!; $(TUNE_RUN) --seeds 1 && wait $$pid
	$(PY) -m benchmarks.bench_tune_policy
	nice -n 19 $(PY) -m benchmarks.bench_tune_cost
	$(PY) -m benchmarks.bench_tune --table

clean:
	rm -rf $(VENV) lrkit-demo lrkit-out site build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
