# Two commands set everything up on a fresh machine:  make venv  (then make test / make demo)
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MXNET_HOME ?= $(CURDIR)/.mxnet_home

.PHONY: venv test test-fast demo bench clean

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c constraints.txt -r requirements.txt
	$(VPY) -m pip install -q -c constraints.txt --no-deps -e .
	touch $(STAMP)

test: venv
	$(VPY) -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
