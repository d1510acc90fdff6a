# The one entry point. `make run` starts the local stack; `make test` runs every test.
# Both install what they need first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	AWS_DEFAULT_REGION=ap-northeast-2 AWS_EC2_METADATA_DISABLED=true
STAGE ?= dev

.PHONY: bootstrap run sandbox tap reconcile test lint build deploy clean screenshot

bootstrap:
	@bash scripts/bootstrap.sh

## Start the whole local stack in the foreground (Ctrl-C stops it all).
run: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local $(PY) -m steppay_local run

## Start only the StepPay sandbox at 127.0.0.1:8181.
sandbox: bootstrap
	PYTHONPATH=sandbox $(PY) -m steppay_sandbox serve

## Print (and take) the events on the local bus's tap queue (make run in another terminal).
tap: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local $(PY) -m steppay_local tap

## Run reconciliation once against the running local stack (make run in another terminal).
reconcile: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local $(PY) -m steppay_local invoke ReconciliationFunction \
		--event events/reconciliation/last-day.json

## Regenerate the README's screenshots of the demo checkout (docs/images/demo.png) from a real run.
screenshot: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local:demo $(PY) scripts/screenshot.py

## Every test: unit, integration (DynamoDB Local, moto, sandbox over HTTP) and end-to-end.
test: bootstrap
	$(PY) -m pytest $(PYTEST_ARGS)

## The full webhook burst of issue 5: 1,000 deliveries for 200 renewals through the local API
## (make test runs 200 for 40). BURST_RENEWALS=n picks any size.
.PHONY: burst
burst: bootstrap
	BURST_FULL=1 $(PY) -m pytest tests/load/test_burst.py -s $(PYTEST_ARGS)

## Linters, all of which must pass clean: ruff, mypy (layer, functions, bench), cfn-lint (exits
## non-zero on warnings too; any suppression in template.yaml carries a comment saying why) and
## sam validate --lint (telemetry off, dummy credentials: nothing reaches AWS).
lint: bootstrap
	$(PY) -m ruff check layers functions sandbox local tests bench
	$(PY) -m mypy layers/steppay/steppay
	for f in functions/*/; do $(PY) -m mypy "$$f" || exit 1; done
	MYPYPATH=layers/steppay:local:sandbox $(PY) -m mypy bench layers/steppay/lock.py
	.venv/bin/cfn-lint template.yaml
	$(SAM_ENV) .venv/bin/sam validate --lint

## sam build: the layer from layers/steppay/requirements.lock (pinned, hashed, cp313 aarch64
## wheels; offline when .wheelhouse holds them: `make -C layers/steppay wheelhouse`), the
## functions as their own code only. Same input, same bytes (tests/build checks it).
build: bootstrap
	$(SAM_ENV) STEPPAY_WHEELHOUSE="$(CURDIR)/.wheelhouse" PATH="$(CURDIR)/.venv/bin:$$PATH" \
		.venv/bin/sam build --no-cached

## sam deploy --config-env $(STAGE) (dev or prod, from samconfig.toml) with your own AWS
## credentials; DEPLOY_ARGS are passed on (e.g. --profile shop-prod --no-confirm-changeset).
deploy: build
	@case "$(STAGE)" in dev|prod) ;; *) echo "STAGE must be dev or prod" >&2; exit 2 ;; esac
	SAM_CLI_TELEMETRY=0 .venv/bin/sam deploy --config-env $(STAGE) $(DEPLOY_ARGS)

## Benchmarks, printed and written to bench-results/ (never pass/fail): cold starts, warm
## latency, connection reuse, memory, cost. BENCH_ARGS="--quick" for a short run.
.PHONY: bench
bench: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local:. $(PY) -m bench.run $(BENCH_ARGS)

## Where a warm pay-url / verify invocation's CPU goes, segment by segment (Powertools layers,
## payment-flow steps, StepPay client, store, log line), next to the floor. Never pass/fail.
.PHONY: bench-segments
bench-segments: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local:. $(PY) -m bench.segments $(BENCH_ARGS)

## What the warm pay-url gap to its floor is made of, by switching parts off one at a time
## (in the bench process only) and measuring the gap again. Never pass/fail.
.PHONY: bench-ablation
bench-ablation: bootstrap
	PYTHONPATH=layers/steppay:sandbox:local:. $(PY) -m bench.ablation $(BENCH_ARGS)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-data test-artifacts
