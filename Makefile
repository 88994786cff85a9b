# The two commands of the README quickstart. Both work from a fresh clone with only Python 3 and pip:
#   make demo   set up .venv and run a 5-fold cross-validation of an MLP on scikit-learn's digits
#   make test   set up .venv with nox and run every nox session (see noxfile.py)
#
# uv does not read pip's configuration, so pip's configured find-links (e.g. a local CPU wheel of
# torch) are read at run time and handed to uv as UV_FIND_LINKS; constraints.txt pins torch.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CONFIG ?= examples/digits/config.yaml

# pip's configured find-links (config files and PIP_FIND_LINKS), comma-separated as uv expects.
FIND_LINKS = $(shell $(PYTHON) -m pip config list 2>/dev/null \
	| sed -n "s/^[^=]*\.find-links=['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\}$$/\1/p" \
	| tr ' \n' '\n\n' | awk 'NF && !seen[$$0]++' | paste -sd, -)
comma := ,
LINKS = $(subst $(eval) ,$(comma),$(strip $(subst $(comma), ,$(UV_FIND_LINKS) $(FIND_LINKS))))
UV_ENV = $(if $(LINKS),UV_FIND_LINKS="$(LINKS)")

.PHONY: demo test venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet uv

venv: $(BIN)/uv

demo: $(BIN)/uv
	$(UV_ENV) $(BIN)/uv pip install --python $(BIN)/python -c constraints.txt \
		-e packages/lcv-config -e packages/lcv-core -e packages/lcv-data
	$(BIN)/lcv cv $(DEMO_CONFIG)

test: $(BIN)/uv
	$(BIN)/python -m pip install --quiet nox
	$(UV_ENV) $(BIN)/nox

clean:
	rm -rf .nox site runs lightning_logs
