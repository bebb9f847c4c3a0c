# aigw: every entry point. `make test` and `make deploy-local` set everything up themselves.
SHELL := /bin/bash
ENV ?= dev
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CDK := npx --no-install cdk
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages synth audit-report deploy-local deploy test lint snapshots bench-synth gateway-local bench-gateway bench-cost clean

install: system-packages $(VENV)/.installed node_modules/.installed

# Debian packages the tests run for real: redis-server (the gateway's shared counters).
system-packages:
	@command -v redis-server >/dev/null || { \
	  echo "installing Debian's redis-server for the gateway's tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server; }

$(VENV)/.installed: requirements.txt requirements-dev.txt gateway/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: install
	$(CDK) synth -c env=$(ENV) --quiet

# The compliance evidence for auditors, from a cloud assembly alone: cdk.out (synthesized here),
# or any other with CDK_OUT=folder. Fails when a control FAILs.
CDK_OUT ?=
audit-report: install
	@if [ -z "$(CDK_OUT)" ]; then $(CDK) synth -c env=$(ENV) --quiet; fi
	$(PY) scripts/audit_report.py $(or $(CDK_OUT),cdk.out)

# Against local emulated AWS (moto's server), with no credentials: deploy, read back, tear down.
deploy-local: install
	$(PY) scripts/deploy_local.py --env $(ENV)

# Against real AWS with the caller's credentials.
deploy: install
	$(CDK) deploy --all -c env=$(ENV) --require-approval broadening

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install lint
	$(VENV)/bin/pytest

snapshots: install
	$(VENV)/bin/pytest tests/test_snapshots.py --snapshot-update

bench-synth: install
	$(PY) scripts/bench_synth.py

# The gateway on 127.0.0.1 against the fake vendor and a local token issuer; prints a curl line.
gateway-local: install
	$(PY) scripts/gateway_local.py --env $(ENV)

bench-gateway: install
	$(PY) scripts/bench_gateway.py

# The cost-anomaly detector on a labelled synthetic set (precision, recall, F1, delay) and the handler at scale.
bench-cost: install
	$(PY) scripts/bench_cost.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .bench
