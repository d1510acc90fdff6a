# The one entry point. `make run` starts the local stack; `make test` runs every test.
# Both install what they need first (scripts/bootstrap.sh is idempotent).
SHELL := /bin/bash
PY := .venv/bin/python
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
	AWS_DEFAULT_REGION=ap-northeast-2 AWS_EC2_METADATA_DISABLED=true
STAGE ?= dev

.PHONY: bootstrap bootstrap-python run sandbox tap reconcile test test-unit lint build deploy clean screenshot

bootstrap:
	@bash scripts/bootstrap.sh

## Only the virtualenv and its requirements (no Java, no browser, no npm): the fast tier's needs.
bootstrap-python:
	@bash scripts/bootstrap.sh --python-only

## Start the whole local stack in the foreground (Ctrl-C stops it all).
run: bootstrap
	.venv/bin/steppay-local run

## Start only the StepPay sandbox at 127.0.0.1:8181.
sandbox: bootstrap
	.venv/bin/steppay-sandbox serve

## Print (and take) the events on the local bus's tap queue (make run in another terminal).
tap: bootstrap
	.venv/bin/steppay-local tap

## Run reconciliation once against the running local stack (make run in another terminal).
reconcile: bootstrap
	.venv/bin/steppay-local invoke ReconciliationFunction \
		--event events/reconciliation/last-day.json

## Regenerate the README's screenshots of the demo checkout (docs/images/demo.png) from a real run.
screenshot: bootstrap
	$(PY) scripts/screenshot.py

## The fast tier: unit tests with in-memory fakes; no Java, no browser, no network (under a minute).
test-unit: bootstrap-python
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

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
	$(PY) -m ruff check layers functions sandbox local tests bench merchant demo scripts
	$(PY) -m mypy layers/steppay/steppay merchant/steppay_merchant.py
	for f in functions/*/; do $(PY) -m mypy "$$f" || exit 1; done
	$(PY) -m mypy bench layers/steppay/lock.py
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
	$(PY) -m bench.run $(BENCH_ARGS)

## Cold starts only, in under two minutes: each function's cold import against the bare floor
## (medians, alternating), -X importtime's costliest imports, the HTTP functions' first invocation
## (import, set-up, rest). Written to bench-results/cold.json (docs/BENCHMARKS.md).
.PHONY: bench-cold
bench-cold: bootstrap
	$(PY) -m bench.cold $(BENCH_ARGS)

## Cost only, in about two minutes: the counted flows (a verified payment, a renewal) through the
## real handlers, one reconciliation run and the priced table; writes bench-results/cost.{json,md}.
.PHONY: bench-cost
bench-cost: bootstrap
	$(PY) -m bench.run --cost-only $(BENCH_ARGS)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-data test-artifacts

## The steppay-sandbox package (standard library only at run time, console script, pytest plugin):
## dist/steppay_sandbox-<version>-py3-none-any.whl and the sdist, built offline with the
## virtualenv's setuptools. `pip install` the wheel into any project (sandbox/README.md).
.PHONY: dist
dist: bootstrap-python
	$(PY) sandbox/build_dist.py --outdir dist

## The Serverless Application Repository package, offline (docs/DISTRIBUTION.md): `sam build` into
## $(PACKAGE_DIR)/build, VERSION written into the template's SemanticVersion, then the real
## `sam package` uploading to an in-memory S3 (moto's server on 127.0.0.1; every AWS endpoint
## points there, so nothing reaches AWS). Out come $(PACKAGE_DIR)/packaged.yaml, whose CodeUri,
## ContentUri, ReadmeUrl and LicenseUrl name s3://$(SAR_BUCKET)/$(SAR_PREFIX)/<md5>, and those
## objects under $(PACKAGE_DIR)/artifacts/ (bucket layout) with artifacts.json (sha256 of each).
## Upload the artifacts to that bucket, then `sam publish` the template (with your credentials).
SAR_BUCKET ?= steppay-sar-artifacts
SAR_VERSION = $(strip $(file < VERSION))
SAR_PREFIX ?= steppay-payments/$(SAR_VERSION)
SAR_SOURCE_CODE_URL ?=
PACKAGE_DIR ?= .aws-sam/sar

define SAR_PACKAGE_PY
import hashlib, json, logging, os, re, subprocess, sys
from pathlib import Path
import boto3
from moto.server import ThreadedMotoServer
from samcli.yamlhelper import yaml_dump, yaml_parse

out, bucket, prefix, source_url = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
version = Path("VERSION").read_text(encoding="utf-8").strip()
if not re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?", version):
    sys.exit(f"VERSION {version!r} is not a semantic version")
if not re.search(rf"^## \[{re.escape(version)}\]", Path("CHANGELOG.md").read_text(encoding="utf-8"), re.M):
    sys.exit(f"CHANGELOG.md has no '## [{version}]' entry")
built = out / "build" / "template.yaml"
template = yaml_parse(built.read_text(encoding="utf-8"))
app = template["Metadata"]["AWS::ServerlessRepo::Application"]
app["SemanticVersion"] = version  # VERSION is the one source
if source_url:
    app["SourceCodeUrl"] = source_url
built.write_text(yaml_dump(template), encoding="utf-8")

logging.getLogger("werkzeug").setLevel(logging.ERROR)
region = "ap-northeast-2"
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
try:
    endpoint = "http://%s:%d" % server.get_host_and_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="local",
               AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION=region, AWS_EC2_METADATA_DISABLED="true",
               SAM_CLI_TELEMETRY="0")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                      aws_access_key_id="local", aws_secret_access_key="local")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    subprocess.run([".venv/bin/sam", "package", "--template-file", str(built), "--s3-bucket", bucket,
                    "--s3-prefix", prefix, "--region", region, "--no-progressbar",
                    "--output-template-file", str(out / "packaged.yaml")], env=env, check=True)
    artifacts, objects = out / "artifacts", {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            (artifacts / item["Key"]).parent.mkdir(parents=True, exist_ok=True)
            (artifacts / item["Key"]).write_bytes(body)
            objects[item["Key"]] = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
finally:
    server.stop()
manifest = {"bucket": bucket, "prefix": prefix, "semanticVersion": version, "objects": objects}
(out / "artifacts.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
print(f"SAR package {version}: {out / 'packaged.yaml'}, {len(objects)} objects for s3://{bucket}/{prefix}/")
endef
export SAR_PACKAGE_PY

.PHONY: package
package: bootstrap-python
	rm -rf "$(PACKAGE_DIR)"
	mkdir -p "$(PACKAGE_DIR)"
	$(SAM_ENV) STEPPAY_WHEELHOUSE="$(CURDIR)/.wheelhouse" PATH="$(CURDIR)/.venv/bin:$$PATH" \
		.venv/bin/sam build --no-cached --build-dir "$(PACKAGE_DIR)/build"
	$(PY) -c "$$SAR_PACKAGE_PY" "$(PACKAGE_DIR)" "$(SAR_BUCKET)" "$(SAR_PREFIX)" "$(SAR_SOURCE_CODE_URL)"
