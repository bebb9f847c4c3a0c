# aigw: every entry point. `make test` and `make deploy-local` set everything up themselves.
SHELL := /bin/bash
ENV ?= dev
PYTHON ?= python3
VENV := .venv
# checkov pins another boto3 than the project's: it gets a virtualenv of its own.
SCAN_VENV := .venv-scan
PY := $(VENV)/bin/python
CDK := npx --no-install cdk
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages synth audit-report sarif evidence diagram scan deploy-local preflight deploy test lint snapshots bench-synth gateway-local bench-gateway bench-policy bench-stall bench-cost drill clean

install: system-packages $(VENV)/.installed $(SCAN_VENV)/.installed node_modules/.installed

# Debian packages the tests and benchmarks run for real: redis-server (the gateway's shared counters), logrotate (the
# instances' log rotation), tmux (the terminal Claude Code's interactive /login is driven in), wrk (the C load
# generator of `make bench-gateway`), graphviz (`dot`, which draws `make diagram`).
SYSTEM_PACKAGES := redis-server:redis-server logrotate:/usr/sbin/logrotate tmux:tmux wrk:wrk graphviz:dot
system-packages:
	@missing=$$(for entry in $(SYSTEM_PACKAGES); do command -v "$${entry#*:}" >/dev/null || echo "$${entry%%:*}"; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian's $$missing for the tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt gateway/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(SCAN_VENV)/.installed: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || $(PYTHON) -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/python -m pip install --quiet -r requirements-scan.txt
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

# The gate's findings (open and acknowledged, with their reasons) as SARIF 2.1.0: cdk.out/compliance.sarif. Written
# when the gate fails too (that is when a code-review tool needs it); a stale report is never converted.
sarif: install
	@if [ -z "$(CDK_OUT)" ]; then rm -f cdk.out/validation-report.json; $(CDK) synth -c env=$(ENV) --quiet || true; fi
	$(PY) scripts/sarif.py $(or $(CDK_OUT),cdk.out)

# Everything an auditor checks against a commit, in one reproducible zip: evidence-<env>-<commit>.zip (templates,
# validation report, audit report, SARIF, diagram, the gateway's settings, acknowledgments, and a manifest of
# sha256s, commit and tool versions). Written when the gate fails too, saying so, and then exits 1.
evidence: install
	@if [ -z "$(CDK_OUT)" ]; then rm -f cdk.out/validation-report.json; $(CDK) synth -c env=$(ENV) --quiet || true; fi
	$(PY) scripts/evidence.py --env $(ENV) $(or $(CDK_OUT),cdk.out)

# The deployed architecture drawn from the cloud assembly alone: cdk.out/architecture.{svg,png,dot}.
diagram: install
	@if [ -z "$(CDK_OUT)" ]; then $(CDK) synth -c env=$(ENV) --quiet; fi
	$(PY) scripts/diagram.py $(or $(CDK_OUT),cdk.out)

# The independent scanners on the synthesized templates: cfn-lint must report nothing, checkov may fail
# only checks acknowledged in code with their reason (listed for auditors).
scan: install
	@if [ -z "$(CDK_OUT)" ]; then $(CDK) synth -c env=$(ENV) --quiet; fi
	$(PY) scripts/scan_templates.py $(or $(CDK_OUT),cdk.out)

# Against local emulated AWS (moto's server), with no credentials: deploy, read back, tear down.
deploy-local: install
	$(PY) scripts/deploy_local.py --env $(ENV)

# Read-only checks of the target account with the caller's credentials, against the assembly `cdk deploy`
# would use (synth needs no credentials). Fails when a check FAILs; run it before `make deploy`.
preflight: install
	$(CDK) synth -c env=$(ENV) --quiet
	$(PY) scripts/preflight.py --env $(ENV) --assembly cdk.out

# Against real AWS with the caller's credentials.
deploy: install
	$(CDK) deploy --all -c env=$(ENV) --require-approval broadening

# Lint needs only the project's virtualenv, so `make test` runs it while the other installs finish. The workflow
# users copy is checked against GitHub's schema (check-jsonschema's copy, offline): actionlint's PyPI package
# downloads its binary from GitHub when it installs, which these machines cannot reach.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

# Installs (each into a folder of its own) and lint side by side, then the tests in one worker per core: more
# workers than cores made the timing tests (breaker, 500 concurrent requests) fail on a loaded 2-core machine.
# `--dist loadgroup` keeps a module, and every test of the synthesized app, in one worker each (tests/conftest.py).
# TEST_WORKERS=0 runs them in this process, one after another.
TEST_WORKERS ?= auto
test:
	@$(MAKE) --no-print-directory -j3 install lint
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup

snapshots: install
	$(VENV)/bin/pytest tests/test_snapshots.py --snapshot-update

bench-synth: install
	$(PY) scripts/bench_synth.py

# The gateway on 127.0.0.1 against the fake vendor and a local token issuer; prints a curl line.
gateway-local: install
	$(PY) scripts/gateway_local.py --env $(ENV)

# The gateway under wrk beside the vendor stub it forwards to (one worker, and one per CPU), overhead at c=1, and
# the limit check's p99.
bench-gateway: install
	$(PY) scripts/bench_gateway.py

# The content policy's check of 1 MiB with every shipped rule: typical text and adversarial shapes, against
# the check as it was before its prefilter (measured in the same run).
bench-policy: install
	$(PY) scripts/bench_policy.py

# One request must not stall the others: ordinary p99 beside a 2 MiB adversarial prompt, and a burst across
# two processes admitted exactly to its limit.
bench-stall: install
	$(PY) scripts/bench_stall.py

# The cost-anomaly detector on a labelled synthetic set (precision, recall, F1, delay) and the handler at scale.
bench-cost: install
	$(PY) scripts/bench_cost.py

# The field report's three incidents against two local gateways behind a local round robin (about 3 minutes):
# what clients saw and which alarms the emitted metrics would set off. No AWS.
drill: install
	$(PY) scripts/drill.py

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .bench
