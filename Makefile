# The one entry point. `make run` starts the local stack; `make test` runs every test.
# Both install what they need first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	AWS_DEFAULT_REGION=ap-northeast-2 AWS_EC2_METADATA_DISABLED=true
STAGE ?= dev

.PHONY: bootstrap run sandbox reconcile test lint build deploy clean

bootstrap:
	@bash scripts/bootstrap.sh

## Start the whole local stack in the foreground (Ctrl-C stops it all).
run: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local $(PY) -m steppay_local run

## Start only the StepPay sandbox at 127.0.0.1:8181.
sandbox: bootstrap
	PYTHONPATH=sandbox $(PY) -m steppay_sandbox serve

## Run reconciliation once against the running local stack (make run in another terminal).
reconcile: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local $(PY) -m steppay_local invoke ReconciliationFunction \
		--event events/reconciliation/last-day.json

## Every test: unit, integration (DynamoDB Local, moto, sandbox over HTTP) and end-to-end.
test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

lint: bootstrap
	$(PY) -m ruff check layers functions sandbox local tests
	$(PY) -m mypy layers/steppay/steppay
	for f in functions/*/; do $(PY) -m mypy "$$f" || exit 1; done
	.venv/bin/cfn-lint template.yaml
	$(SAM_ENV) .venv/bin/sam validate --lint

build: bootstrap
	$(SAM_ENV) PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/sam build --no-cached

deploy: build
	.venv/bin/sam deploy --config-env $(STAGE)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-data test-artifacts
