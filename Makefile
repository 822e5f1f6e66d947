# localmim_mm: the two README commands and their building blocks.
#   make demo   set up the environment if needed, pre-train LocalMIM on the shipped sample images
#   make test   set up the environment if needed, run the test suite
PYTHON ?= .venv/bin/python

.PHONY: setup demo test clean

setup:
	@bash tools/setup_env.sh

demo: setup
	@bash tools/demo.sh

test: setup
	@bash tools/run_tests.sh

clean:
	rm -rf work_dirs .pytest_cache
