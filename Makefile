# The two entry points: `make demo` and `make test`.  Both build the virtual
# environment, install the package with its test extra and compile the
# extension on first use; running them again rebuilds nothing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXT_STAMP := aiotcp/.built

.PHONY: demo test bench microbench clean venv

demo: $(EXT_STAMP)
	$(PY) -m aiotcp demo

test: $(EXT_STAMP)
	$(PY) -m ruff check aiotcp tests bench examples
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(EXT_STAMP)
	$(PY) -m pip install -q aioquic
	$(PY) bench/bench.py
	$(PY) bench/lossy.py
	$(PY) bench/udp_floor.py
	$(PY) bench/bulk_floor.py

microbench: $(EXT_STAMP)
	$(PY) bench/micro.py

venv: $(STAMP)

# The build speaks one line a step; everything the tools print goes to
# $(BUILD_LOG), named (with its tail) when a step fails.
BUILD_LOG := build.log
QUIET = > $(BUILD_LOG) 2>&1 || { echo "build failed: the full log is $(CURDIR)/$(BUILD_LOG)"; tail -n 30 $(BUILD_LOG); exit 1; }

$(STAMP): pyproject.toml setup.py
	@echo "setting up the virtual environment in $(VENV) (about a minute)"
	@{ test -x $(PY) || $(PYTHON) -m venv $(VENV); } $(QUIET)
	@$(PY) -m pip install -q --upgrade pip setuptools wheel "Cython>=3.0" $(QUIET)
	@$(PY) -m pip install -q --no-build-isolation -e '.[test]' $(QUIET)
	@touch $@

$(EXT_STAMP): $(STAMP) aiotcp/_fast.pyx aiotcp/_fast.pxd aiotcp/_dgram.pyx aiotcp/_dgram.pxd aiotcp/core/connection.py aiotcp/core/connection.pxd aiotcp/core/endpoint.py aiotcp/core/endpoint.pxd aiotcp/core/congestion.py aiotcp/core/congestion.pxd aiotcp/core/rack.py aiotcp/core/rack.pxd aiotcp/core/ranges.py aiotcp/core/ranges.pxd aiotcp/core/recovery.py aiotcp/core/recovery.pxd aiotcp/core/receive.py aiotcp/core/receive.pxd aiotcp/core/rtt.py aiotcp/core/rtt.pxd aiotcp/core/rate.py aiotcp/core/bbr.py aiotcp/core/pmtu.py aiotcp/core/pmtu.pxd aiotcp/aio/udp.py aiotcp/aio/udp.pxd setup.py
	@echo "building the compiled core (about a minute)"
	@$(PY) setup.py -q build_ext --inplace --parallel 2 $(QUIET)
	@touch $@

clean:
	rm -rf build $(BUILD_LOG) $(VENV) aiotcp/*.so aiotcp/*.c aiotcp/*/*.so aiotcp/*/*.c $(EXT_STAMP) .pytest_cache
