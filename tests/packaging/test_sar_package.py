"""The Serverless Application Repository package (docs/DISTRIBUTION.md).

Fast checks, no build: the template's `AWS::ServerlessRepo::Application` metadata is complete and
within SAR's limits, its SemanticVersion is VERSION's, CHANGELOG.md's newest entry is VERSION,
every resource type (as written and as SAM translates it) is on SAR's supported list or carries a
recorded justification, and the capabilities a deployer acknowledges are the documented ones.

Over `make package`'s output (run once per module into a temporary PACKAGE_DIR: `sam build`, then
the real `sam package` against moto's S3 on loopback; about 25 s): every CodeUri, ContentUri,
ReadmeUrl and LicenseUrl is an s3 URI of an artifact the package holds, the packaged template
passes cfn-lint and SAM's own translator unchanged, and `sam publish`'s request to SAR (made by
SAM CLI's own publish code against a botocore Stubber, which validates it against the SAR API
model) carries that template and VERSION. `STEPPAY_SKIP_BUILD_TESTS=1` skips the packaged part.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import ANY, Stubber
from fixtures.sam import sam_template, translated_template
from samtranslator.translator.transform import transform

from steppay_local.template import CfnLoader

ROOT = Path(__file__).resolve().parents[2]
VERSION_FILE = ROOT / "VERSION"
CHANGELOG = ROOT / "CHANGELOG.md"
DISTRIBUTION_DOC = ROOT / "docs" / "DISTRIBUTION.md"
VENV_BIN = ROOT / ".venv" / "bin"
REGION = "ap-northeast-2"
SAR_BUCKET = "steppay-sar-test"
PACKAGE_TIMEOUT = 900

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")

# SAR's "List of Supported AWS Resources" as published in the SAR Developer Guide's source
# (github.com/awsdocs/aws-serverlessrepo-developer-guide, doc_source/list-supported-resources.md,
# commit 5e8664b, 2021-02-08, the last before that repository was archived). The live page
# (docs.aws.amazon.com/serverlessrepo/latest/devguide/list-supported-resources.html) has grown
# since (it starts with AWS::AccessAnalyzer::Analyzer, AWS::AmazonMQ::Broker, ...); check it
# before publishing and add here what it adds.
_SAR_LIST = """
    AccessAnalyzer: Analyzer
    ApiGateway: ApiKey Authorizer BasePathMapping ClientCertificate Deployment DocumentationPart
        DocumentationVersion DomainName GatewayResponse Method Model RequestValidator Resource RestApi
        Stage UsagePlan UsagePlanKey VpcLink
    ApiGatewayV2: Api ApiMapping Authorizer Deployment DomainName Integration IntegrationResponse Model
        Route RouteResponse Stage
    AppSync: ApiKey DataSource GraphQLApi GraphQLSchema Resolver
    ApplicationAutoScaling: ScalableTarget ScalingPolicy
    Athena: NamedQuery
    CertificateManager: Certificate
    CloudFormation: CustomResource Interface Macro WaitConditionHandle
    CloudFront: CloudFrontOriginAccessIdentity Distribution StreamingDistribution
    CloudTrail: Trail
    CloudWatch: Alarm AnomalyDetector Dashboard InsightRule
    CodeBuild: Project
    CodeCommit: Repository
    CodePipeline: CustomActionType Pipeline Webhook
    Cognito: IdentityPool IdentityPoolRoleAttachment UserPool UserPoolClient UserPoolDomain UserPoolGroup
        UserPoolResourceServer UserPoolUser UserPoolUserToGroupAttachment
    Config: AggregationAuthorization ConfigRule ConfigurationAggregator ConfigurationRecorder
        DeliveryChannel RemediationConfiguration
    DataPipeline: Pipeline
    DynamoDB: Table
    EC2: SecurityGroup SecurityGroupEgress SecurityGroupIngress
    ECR: Repository
    Elasticsearch: Domain
    EventSchemas: Discoverer Registry Schema
    Events: EventBusPolicy Rule
    Glue: Classifier Connection Crawler Database DevEndpoint Job Partition Table Trigger
    IAM: Group InstanceProfile ManagedPolicy Policy Role
    IoT: Certificate Policy PolicyPrincipalAttachment Thing ThingPrincipalAttachment TopicRule
    KMS: Alias Key
    Kinesis: Stream StreamConsumer Streams
    KinesisAnalytics: Application ApplicationOutput
    KinesisFirehose: DeliveryStream
    Lambda: Alias EventInvokeConfig EventSourceMapping Function LayerVersion LayerVersionPermission
        Permission Version
    Logs: Destination LogGroup LogStream MetricFilter SubscriptionFilter
    Route53: HealthCheck HostedZone RecordSet RecordSetGroup
    S3: Bucket BucketPolicy
    SNS: Subscription Topic TopicPolicy
    SQS: Queue QueuePolicy
    SSM: Association Document MaintenanceWindowTask Parameter PatchBaseline ResourceDataSync
    Serverless: Api Application Function HttpApi LayerVersion SimpleTable StateMachine
    StepFunctions: Activity StateMachine
"""


def _parse_sar_list(text: str) -> frozenset[str]:
    types: set[str] = set()
    service = ""
    for line in text.strip().splitlines():
        head, sep, rest = line.strip().partition(": ")
        if sep:
            service, names = head, rest
        else:
            names = line
        types.update(f"AWS::{service}::{name}" for name in names.split())
    return frozenset(types)


SAR_SUPPORTED = _parse_sar_list(_SAR_LIST)

# Types the bundle uses that the recorded list lacks, and why they stay (docs/DISTRIBUTION.md,
# "Resource types"). A type here that the bundle stops using fails a test, so the list cannot rot.
NOT_ON_RECORDED_LIST = {
    "AWS::Events::EventBus": (
        "declared (EventBus): the bundle's own bus, which EventBusPublisherOnlyPolicy locks to the "
        "publisher. Not on the 2021 list, which already has EventBusPolicy and Rule; confirm it on the "
        "live list before publishing. If SAR refuses it, take an existing bus's name as a parameter "
        "(the parent stack creates the bus) and keep the policy and the rule, both on the list."
    ),
    "AWS::Scheduler::Schedule": (
        "generated by SAM from ReconciliationFunction's ScheduleV2 event, not declared: SAR stores "
        "the SAM template and CloudFormation expands it at deploy time (aws/serverless-application-model"
        " discussion 2712: a Function's ScheduleV2 publishes). If SAR refuses it, `Type: Schedule` "
        "(an AWS::Events::Rule, on the list) runs the same rate() expression."
    ),
}

# What SAR makes a deployer acknowledge (SAR Developer Guide, "Application Capabilities").
CAPABILITY_OF_TYPE = {
    "AWS::IAM::Group": "CAPABILITY_IAM",
    "AWS::IAM::InstanceProfile": "CAPABILITY_IAM",
    "AWS::IAM::Policy": "CAPABILITY_IAM",
    "AWS::IAM::Role": "CAPABILITY_IAM",
    # CloudFormation asks CAPABILITY_IAM for a managed policy too.
    "AWS::IAM::ManagedPolicy": "CAPABILITY_IAM",
    "AWS::Lambda::LayerVersionPermission": "CAPABILITY_RESOURCE_POLICY",
    "AWS::Lambda::Permission": "CAPABILITY_RESOURCE_POLICY",
    "AWS::Events::EventBusPolicy": "CAPABILITY_RESOURCE_POLICY",
    "AWS::ApplicationAutoScaling::ScalingPolicy": "CAPABILITY_RESOURCE_POLICY",
    "AWS::S3::BucketPolicy": "CAPABILITY_RESOURCE_POLICY",
    "AWS::SQS::QueuePolicy": "CAPABILITY_RESOURCE_POLICY",
    "AWS::SNS::TopicPolicy": "CAPABILITY_RESOURCE_POLICY",
    "AWS::Serverless::Application": "CAPABILITY_AUTO_EXPAND",
}
NAME_PROPERTIES = {"AWS::IAM::Role": "RoleName", "AWS::IAM::ManagedPolicy": "ManagedPolicyName"}
DOCUMENTED_CAPABILITIES = {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"}

# Parameter sets that between them create every conditional resource.
PARAMETER_SETS = {
    "defaults": {},
    "everything": {"MerchantApiKeyAuth": "enabled", "AlarmEmail": "ops@example.com"},
}


def _version() -> str:
    return VERSION_FILE.read_text(encoding="utf-8").strip()


def _app_metadata(template: dict[str, Any]) -> dict[str, Any]:
    app: dict[str, Any] = template["Metadata"]["AWS::ServerlessRepo::Application"]
    return app


# --- Fast: the source ------------------------------------------------------------------------


def test_version_is_one_semantic_version() -> None:
    text = VERSION_FILE.read_text(encoding="utf-8")
    assert text == text.strip() + "\n", "VERSION holds one line"
    assert SEMVER.match(_version()), f"VERSION {_version()!r} is not a semantic version"


def test_template_semantic_version_is_VERSION() -> None:
    assert str(_app_metadata(sam_template())["SemanticVersion"]) == _version()


def test_changelog_newest_entry_is_VERSION() -> None:
    entries = re.findall(
        r"^## \[([^\]]+)\] - (Unreleased|\d{4}-\d{2}-\d{2})$", CHANGELOG.read_text(encoding="utf-8"), re.M
    )
    assert entries, "CHANGELOG.md has no '## [x.y.z] - date' entries"
    versions = [version for version, _ in entries]
    assert versions[0] == _version()
    assert all(SEMVER.match(version) for version in versions)
    as_tuples = [tuple(int(part) for part in v.split("-")[0].split("+")[0].split(".")) for v in versions]
    assert as_tuples == sorted(as_tuples, reverse=True) and len(set(as_tuples)) == len(as_tuples)
    assert [date for _, date in entries[1:]].count("Unreleased") == 0, "only the newest may be unreleased"


def test_sar_metadata_is_complete_and_within_sar_limits() -> None:
    # Limits from SAR's CreateApplication API (botocore's serverlessrepo model documentation).
    app = _app_metadata(sam_template())
    assert re.fullmatch(r"[a-zA-Z0-9\-]{1,140}", app["Name"])
    assert 1 <= len(app["Description"]) <= 256
    assert re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", app["Author"]) and len(app["Author"]) <= 127
    assert 1 <= len(app["Labels"]) <= 10
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in app["Labels"])
    assert app["SpdxLicenseId"] == "MIT"
    assert (ROOT / app["LicenseUrl"]).is_file() and (ROOT / app["ReadmeUrl"]).is_file()
    assert (ROOT / app["LicenseUrl"]).read_text(encoding="utf-8").startswith("MIT License\n")
    assert "LicenseBody" not in app and "ReadmeBody" not in app  # SAR takes one of each, not both
    for key in ("HomePageUrl", "SourceCodeUrl"):
        assert re.match(r"^https://\S+$", app[key]), key
    readme = ROOT / app["ReadmeUrl"]
    assert readme.stat().st_size < 5 * 1024 * 1024  # SAR's limit for a readme


# --- Fast: resource types and capabilities ---------------------------------------------------


def _types(template: dict[str, Any]) -> set[str]:
    return {resource["Type"] for resource in template["Resources"].values()}


def test_declared_types_are_supported_by_sar_or_justified() -> None:
    unsupported = _types(sam_template()) - SAR_SUPPORTED - NOT_ON_RECORDED_LIST.keys()
    assert not unsupported, f"not on SAR's supported list and not justified: {sorted(unsupported)}"


@pytest.mark.parametrize("name", sorted(PARAMETER_SETS))
def test_translated_types_are_supported_by_sar_or_justified(name: str) -> None:
    unsupported = (
        _types(translated_template(PARAMETER_SETS[name])) - SAR_SUPPORTED - NOT_ON_RECORDED_LIST.keys()
    )
    assert not unsupported, f"not on SAR's supported list and not justified: {sorted(unsupported)}"


def test_every_justified_exception_is_still_used() -> None:
    used = _types(sam_template()).union(*(_types(translated_template(p)) for p in PARAMETER_SETS.values()))
    unused = NOT_ON_RECORDED_LIST.keys() - used
    assert not unused, f"no longer used, drop the justification: {sorted(unused)}"
    assert not NOT_ON_RECORDED_LIST.keys() & SAR_SUPPORTED, "on the list after all: drop the justification"


def test_capabilities_a_deployer_acknowledges_are_the_documented_ones() -> None:
    translated = translated_template(PARAMETER_SETS["everything"])
    needed = {CAPABILITY_OF_TYPE[t] for t in _types(translated) if t in CAPABILITY_OF_TYPE}
    needed |= {CAPABILITY_OF_TYPE[t] for t in _types(sam_template()) if t in CAPABILITY_OF_TYPE}
    named = [
        logical_id
        for logical_id, resource in translated["Resources"].items()
        if NAME_PROPERTIES.get(resource["Type"]) in resource.get("Properties", {})
    ]
    assert not named, f"named IAM resources would need CAPABILITY_NAMED_IAM: {named}"
    assert needed == DOCUMENTED_CAPABILITIES
    doc = DISTRIBUTION_DOC.read_text(encoding="utf-8")
    assert all(capability in doc for capability in DOCUMENTED_CAPABILITIES)


# --- Over `make package` ----------------------------------------------------------------------


@dataclass
class Package:
    directory: Path
    seconds: float

    @property
    def template_path(self) -> Path:
        return self.directory / "packaged.yaml"

    @property
    def text(self) -> str:
        return self.template_path.read_text(encoding="utf-8")

    @property
    def template(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.load(self.text, Loader=CfnLoader)
        return loaded

    @property
    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.directory / "artifacts.json").read_text(encoding="utf-8"))
        return loaded

    def artifact(self, s3_uri: str) -> bytes:
        bucket, _, key = s3_uri.removeprefix("s3://").partition("/")
        assert bucket == SAR_BUCKET
        return (self.directory / "artifacts" / key).read_bytes()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Package]:
    if os.environ.get("STEPPAY_SKIP_BUILD_TESTS") == "1":
        pytest.skip("STEPPAY_SKIP_BUILD_TESTS=1")
    if not (VENV_BIN / "sam").exists():
        pytest.fail("aws-sam-cli is not installed in .venv (run scripts/bootstrap.sh)")
    directory = tmp_path_factory.mktemp("sar") / "package"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("MAKEFLAGS", None)
    started = time.perf_counter()
    result = subprocess.run(
        ["make", "--no-print-directory", "package", f"PACKAGE_DIR={directory}", f"SAR_BUCKET={SAR_BUCKET}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=PACKAGE_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        pytest.fail(f"make package failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    yield Package(directory, seconds)


def _uris(template: dict[str, Any]) -> dict[str, str]:
    """Every artifact URI the packaged template names, by `<logical id>.<property>`."""
    uris: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        for prop in ("CodeUri", "ContentUri"):
            if prop in resource.get("Properties", {}):
                uris[f"{logical_id}.{prop}"] = resource["Properties"][prop]
    app = _app_metadata(template)
    uris["Metadata.ReadmeUrl"] = app["ReadmeUrl"]
    uris["Metadata.LicenseUrl"] = app["LicenseUrl"]
    return uris


def test_package_points_every_artifact_at_s3(package: Package) -> None:
    source = sam_template()
    code_properties = {
        f"{logical_id}.{prop}"
        for logical_id, resource in source["Resources"].items()
        for prop in ("CodeUri", "ContentUri")
        if prop in resource.get("Properties", {})
    }
    uris = _uris(package.template)
    assert code_properties <= uris.keys()
    version = _version()
    prefix = f"s3://{SAR_BUCKET}/steppay-payments/{version}/"
    wrong = {
        where: uri for where, uri in uris.items() if not (isinstance(uri, str) and uri.startswith(prefix))
    }
    assert not wrong, f"not under {prefix}: {wrong}"


def test_package_semantic_version_is_VERSION(package: Package) -> None:
    app = _app_metadata(package.template)
    assert str(app["SemanticVersion"]) == _version()
    assert package.manifest["semanticVersion"] == _version()


def test_package_holds_every_artifact_it_names(package: Package) -> None:
    manifest = package.manifest
    assert manifest["bucket"] == SAR_BUCKET
    named = {uri.removeprefix(f"s3://{SAR_BUCKET}/") for uri in _uris(package.template).values()}
    assert named == set(manifest["objects"]), "artifacts.json lists exactly what the template names"
    for key, entry in manifest["objects"].items():
        body = (package.directory / "artifacts" / key).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] and len(body) == entry["size"]


def test_package_readme_and_license_are_the_repository_files(package: Package) -> None:
    app = _app_metadata(package.template)
    source = _app_metadata(sam_template())
    assert package.artifact(app["ReadmeUrl"]) == (ROOT / source["ReadmeUrl"]).read_bytes()
    assert package.artifact(app["LicenseUrl"]) == (ROOT / source["LicenseUrl"]).read_bytes()


def test_package_code_archives_hold_the_code(package: Package) -> None:
    template = package.template
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            names = zipfile.ZipFile(io.BytesIO(package.artifact(properties["CodeUri"]))).namelist()
            module = properties["Handler"].rsplit(".", 1)[0] + ".py"
            assert module in names, f"{logical_id}: {module} not in its archive"
            assert not any(n.startswith("steppay/") for n in names), f"{logical_id} carries the layer"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            archive = zipfile.ZipFile(io.BytesIO(package.artifact(properties["ContentUri"])))
            assert archive.testzip() is None
            assert "python/steppay/__init__.py" in archive.namelist()


def test_packaged_template_passes_cfn_lint(package: Package) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "cfn-lint"), str(package.template_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


@pytest.mark.parametrize("name", sorted(PARAMETER_SETS))
def test_packaged_template_translates_as_it_is(package: Package, name: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    translated = transform(package.template, dict(PARAMETER_SETS[name]), _NoManagedPolicies())
    for logical_id, resource in translated["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            code = resource["Properties"]["Code"]
            assert code["S3Bucket"] == SAR_BUCKET and code["S3Key"], logical_id
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            assert resource["Properties"]["Content"]["S3Bucket"] == SAR_BUCKET, logical_id


def _sar_client() -> Any:
    return boto3.client(
        "serverlessrepo", region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
    )


def _publish_request_expectations(package: Package) -> dict[str, Any]:
    app = _app_metadata(package.template)
    return {
        "Author": app["Author"],
        "Description": app["Description"],
        "HomePageUrl": app["HomePageUrl"],
        "Labels": app["Labels"],
        "LicenseUrl": app["LicenseUrl"],
        "Name": app["Name"],
        "ReadmeUrl": app["ReadmeUrl"],
        "SemanticVersion": _version(),
        "SourceCodeUrl": app["SourceCodeUrl"],
        "SpdxLicenseId": app["SpdxLicenseId"],
        "TemplateBody": ANY,
    }


def test_sam_publish_sends_a_valid_create_application(package: Package) -> None:
    """SAM CLI's own publish code, its SAR call answered by a Stubber (no request leaves)."""
    from samcli.vendor.serverlessrepo.publish import publish_application

    client = _sar_client()
    sent: dict[str, Any] = {}
    client.meta.events.register(
        "provide-client-params.serverlessrepo.CreateApplication", lambda params, **_: sent.update(params)
    )
    app_id = f"arn:aws:serverlessrepo:{REGION}:123456789012:applications/steppay-payments"
    with Stubber(client) as stub:
        stub.add_response(
            "create_application", {"ApplicationId": app_id}, _publish_request_expectations(package)
        )
        result = publish_application(package.text, sar_client=client)
        stub.assert_no_pending_responses()
    assert result["application_id"] == app_id
    body = yaml.load(sent["TemplateBody"], Loader=CfnLoader)
    assert "AWS::ServerlessRepo::Application" not in body.get("Metadata", {})
    assert _uris({**body, "Metadata": package.template["Metadata"]}) == _uris(package.template)


def test_sam_publish_of_a_new_version_creates_that_version(package: Package) -> None:
    from samcli.vendor.serverlessrepo.publish import publish_application

    client = _sar_client()
    app_id = f"arn:aws:serverlessrepo:{REGION}:123456789012:applications/steppay-payments"
    app = _app_metadata(package.template)
    with Stubber(client) as stub:
        stub.add_client_error(
            "create_application",
            service_error_code="ConflictException",
            service_message=f"Application with id {app_id} already exists",
            http_status_code=409,
        )
        stub.add_response("update_application", {})  # its parameters: checked by the model only
        stub.add_response(
            "create_application_version",
            {},
            {
                "ApplicationId": app_id,
                "SemanticVersion": _version(),
                "SourceCodeUrl": app["SourceCodeUrl"],
                "TemplateBody": ANY,
            },
        )
        result = publish_application(package.text, sar_client=client, fail_on_same_version=False)
        stub.assert_no_pending_responses()
    assert result["actions"] == ["UPDATE_APPLICATION", "CREATE_APPLICATION_VERSION"]


def test_distribution_doc_covers_package_publish_and_nesting() -> None:
    doc = DISTRIBUTION_DOC.read_text(encoding="utf-8")
    for needle in ("make package", "sam publish", "AWS::Serverless::Application", "CAPABILITY_AUTO_EXPAND"):
        assert needle in doc, needle


def test_the_nesting_snippet_names_only_parameters_and_outputs_the_template_has() -> None:
    """docs/DISTRIBUTION.md's parent stack: what it passes in and reads out must exist here.

    (Deploying it needs SAR itself; what can be checked offline is that the snippet is valid YAML,
    passes only parameters this template declares, and reads only outputs it has.)
    """
    import yaml

    from steppay_local.template import CfnLoader

    doc = DISTRIBUTION_DOC.read_text(encoding="utf-8")
    block = doc[doc.index("## Nesting it in another stack") :]
    snippet = re.search(r"```yaml\n(.*?)```", block, flags=re.DOTALL).group(1)  # type: ignore[union-attr]
    snippet = re.sub(r"<[^>]+>", "placeholder", snippet)
    parent = yaml.load(snippet, Loader=CfnLoader)
    ours = yaml.load((ROOT / "template.yaml").read_text(encoding="utf-8"), Loader=CfnLoader)
    nested = parent["Resources"]["Payments"]
    assert nested["Type"] == "AWS::Serverless::Application"
    assert set(nested["Properties"]["Parameters"]) <= set(ours["Parameters"])
    read = set(re.findall(r"Payments\.Outputs\.([A-Za-z]+)", snippet))
    assert read and read <= set(ours["Outputs"]), read - set(ours["Outputs"])
    assert nested["Properties"]["Location"]["SemanticVersion"] == (ROOT / "VERSION").read_text().strip()
