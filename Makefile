# The course's commands. `make book` and `make test` are the README's contract:
# each creates .venv on a fresh machine and does everything else itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch must be installed FIRST: any other torch requirement
# would pull a multi-GB CUDA build.
TORCH  := torch==2.13.0
SUBMISSIONS ?=
LAB ?=
CELL_TIMEOUT ?= 120
TEST_TIMEOUT ?= 20
JOBS ?= 2
# Where the chapters share their protocol runs (odt.train.cache_dir); `make clean` removes it.
export ODTLAB_CACHE := $(CURDIR)/_build/.odtlab_cache

.PHONY: book test lab student grade lint clean help chromium chapters fl-demo

help:
	@echo "make book     build the book (executes every chapter) into _build/html"
	@echo "make test     run every test: lint, strict book build, unit tests, lab notebooks, browser"
	@echo "make lab      open JupyterLab on the student notebooks (labs/student/)"
	@echo "make student  build student notebooks + autograder zips into dist/"
	@echo "make grade SUBMISSIONS=folder [LAB=name] [JOBS=2]  grade a folder of notebooks into a CSV"
	@echo "make fl-demo  run 2 clients x 2 rounds on a local Flower SuperLink + SuperNodes, compare with odtlab's engine"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-book: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[book]"
	touch $@

$(VENV)/.stamp-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(VENV)/.stamp-book $(VENV)/.stamp-lab

$(VENV)/.stamp-lab: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[lab]"
	touch $@

# MathJax and the widget scripts, fetched once from npm into _offline/ so that
# the built book renders with no network (scripts/offline_assets.sh).
# npm is installed with apt where missing and we are root (CI's clean Debian).
_offline/.stamp: scripts/offline_assets.sh
	@command -v npm >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] \
	  || { apt-get update -qq && apt-get install -y -qq npm; }
	./scripts/offline_assets.sh

# The browser tests drive the system Chromium headless (playwright's own browser
# download needs the network). Installed with apt where missing and we are root.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	       else echo "chromium is missing: sudo apt-get install chromium (else the browser tests skip)"; fi; }

# The chapters (MyST notebooks) are executed two at a time into the book's
# execution cache (jupyter-cache, the store `jupyter-book build` reads; myst-nb's
# reader gives the same notebook, so the build finds them there), one torch
# thread per kernel. Jupyter Book 1 executes one page after the other; most
# chapters keep one core busy, so two at a time nearly halve the wait. Only
# chapters whose code changed run again. A chapter that fails here is executed
# again by the build, which reports its error.
#
# First, `odtlab protocol` trains the standard fine-tuning methods under the book's one
# protocol (odt.train.Protocol: one task, optimizer, step count, seeds) into ODTLAB_CACHE,
# two at a time: the chapters on activation memory, TinyTL and 256 KB all read these runs,
# which are trained once instead of once per chapter. Cached runs are kept until odtlab's
# source changes.
NOTEBOOK_CHAPTERS := $(shell grep -l '^kernelspec:' chapters/*.md)
chapters: $(VENV)/.stamp-book
	OMP_NUM_THREADS=1 $(BIN)/odtlab protocol --workers 2
	yes | JUPYTERCACHE=_build/.jupyter_cache $(BIN)/jcache notebook add --reader myst_nb_md $(NOTEBOOK_CHAPTERS) >/dev/null
	JUPYTERCACHE=_build/.jupyter_cache OMP_NUM_THREADS=1 $(BIN)/jcache project execute \
	  --executor local-parallel --timeout 300 --verbosity WARNING

book: $(VENV)/.stamp-book _offline/.stamp chapters
	$(BIN)/jupyter-book build .
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

test: $(VENV)/.stamp-test _offline/.stamp chromium
	$(BIN)/ruff check .
	$(MAKE) chapters
	$(BIN)/jupyter-book build --all -W -n --keep-going .
	$(BIN)/python -m pytest tests labs --nbval-lax --ignore=labs/student -p no:cacheprovider -n 2 --dist loadfile \
	  --durations=25

lab: $(VENV)/.stamp-lab
	$(BIN)/jupyter lab labs/student/

student: $(VENV)/.stamp-lab
	$(BIN)/odtlab student

grade: $(VENV)/.stamp-lab
	@test -n "$(SUBMISSIONS)" || (echo "usage: make grade SUBMISSIONS=folder [LAB=lab00_welcome]"; exit 2)
	$(BIN)/odtlab grade "$(SUBMISSIONS)" $(if $(LAB),--lab $(LAB)) --jobs $(JOBS) \
		--cell-timeout $(CELL_TIMEOUT) --test-timeout $(TEST_TIMEOUT)

# A SuperLink and two SuperNodes on 127.0.0.1 (FLWR_HOME under _build/flower-demo),
# 2 rounds, every process stopped; flwr comes with the test extra.
fl-demo: $(VENV)/.stamp-test
	$(BIN)/python -m odtlab.fl.flower --clients 2 --rounds 2 --workdir _build/flower-demo

lint: $(VENV)/.stamp-test
	$(BIN)/ruff check .

clean:
	rm -rf _build dist .pytest_cache _offline
