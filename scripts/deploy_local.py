"""Deploy aigw to local emulated AWS (moto's server), read back what was created, and stop the emulator.

    python scripts/deploy_local.py [--env dev] [--moto-log FILE]

The same `cdk bootstrap` and `cdk deploy --all` that run against a real account, pointed at a fresh
moto server on a free loopback port with dummy credentials, so nothing reaches AWS. The readback is
evidence that the resources exist; that their settings hold is proven by the template assertions in
tests/, because moto accepts some properties and drops them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import ConfigError, load_config  # noqa: E402
from scripts.moto_server import STAND_IN_PREFIX  # noqa: E402

CDK = ["npx", "--no-install", "cdk"]
DONE_STATUSES = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}


@dataclass(frozen=True)
class Row:
    stack: str
    resource_type: str
    logical_id: str
    status: str
    detail: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(account: str, log_path: Path) -> Iterator[str]:
    """A moto server of our own on 127.0.0.1 (fresh, in-memory data), stopped on the way out."""
    port = free_port()
    # "localhost", not 127.0.0.1: moto reads a template URL on any other host as virtual-hosted
    # (bucket = first label of the host), and the CDK CLI sends path-style URLs to a custom endpoint.
    url = f"http://localhost:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ACCOUNT_ID": account},
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"moto server did not start; its log: {log_path}") from None
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def local_aws_environment(endpoint: str, region: str) -> dict[str, str]:
    """Dummy credentials aimed at the emulator; the caller's real profile and credentials are hidden."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        CDK_DISABLE_CLI_TELEMETRY="true",
    )
    return env


def run(command: list[str], env: dict[str, str]) -> None:
    # The tools' progress goes to stderr (the CDK CLI writes it to stdout when CI is set): stdout
    # carries only this script's report, which tests and users read.
    print("$", " ".join(command), file=sys.stderr, flush=True)
    completed = subprocess.run(command, cwd=ROOT, env=env, stdout=sys.stderr, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"failed ({completed.returncode}): {' '.join(command)}")


def stack_artifacts(assembly: Path) -> dict[str, Path]:
    """Deployed stack name -> its template, from the cloud assembly the deploy used."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        artifact["properties"].get("stackName", artifact_id): assembly / artifact["properties"]["templateFile"]
        for artifact_id, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


@dataclass(frozen=True)
class Clients:
    session: boto3.Session
    endpoint: str

    def __call__(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)


def import_certificate(acm: Any, common_name: str, *alternatives: str, days: int = 1) -> str:
    """A self-signed certificate for these names, imported into (the emulator's) ACM: its ALB accepts an HTTPS
    listener only with a certificate its ACM holds (the real environments name theirs in config)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if alternatives:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in alternatives]), False)
    certificate = builder.sign(key, hashes.SHA256())
    private_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    response = acm.import_certificate(
        Certificate=certificate.public_bytes(serialization.Encoding.PEM), PrivateKey=private_key
    )
    return str(response["CertificateArn"])


def resource_details(clients: Clients) -> dict[str, str]:
    """Physical id -> what proves the resource is the one we meant (a subnet's AZ, an endpoint's service)."""
    ec2 = clients("ec2")
    subnets = ec2.describe_subnets()["Subnets"]
    details = {s["SubnetId"]: f"{s['AvailabilityZone']} {s['CidrBlock']}" for s in subnets}
    subnet_azs = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    details.update(
        {
            e["VpcEndpointId"]: f"{e['VpcEndpointType']} {e['ServiceName']}"
            for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
        }
    )
    details.update({v["VpcId"]: v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]})
    for group in clients("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"]:
        # What the deploy controls: the group's subnets and so its AZs. Where the instances land is moto's
        # choice (AWS balances them across these AZs), so only their number is reported.
        group_subnets = [subnet for subnet in group.get("VPCZoneIdentifier", "").split(",") if subnet]
        azs = sorted({subnet_azs.get(subnet, f"unknown-subnet:{subnet}") for subnet in group_subnets})
        details[group["AutoScalingGroupName"]] = (
            f"{len(group_subnets)} subnets in {','.join(azs)}; {len(group['Instances'])} instances"
        )
    for balancer in clients("elbv2").describe_load_balancers()["LoadBalancers"]:
        details[balancer["LoadBalancerArn"]] = f"{balancer['Scheme']} {balancer['DNSName']}"
    return details


def read_back(clients: Clients, templates: dict[str, Path]) -> tuple[list[Row], dict[str, list[str]], list[str]]:
    """What CloudFormation reports per stack, the template's resource types it skipped, and failed stacks."""
    cloudformation = clients("cloudformation")
    details = resource_details(clients)
    rows: list[Row] = []
    skipped: dict[str, list[str]] = {}
    failed: list[str] = []
    for stack_name, template_path in templates.items():
        status = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if status not in DONE_STATUSES:
            failed.append(f"{stack_name}: {status}")
        # A type moto does not model comes back as a bare entry with no logical id or type.
        created: dict[str, Any] = {
            r["LogicalResourceId"]: r
            for r in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
            if "ResourceType" in r
        }
        for logical_id, resource in sorted(created.items(), key=lambda item: (item[1]["ResourceType"], item[0])):
            physical_id = resource.get("PhysicalResourceId", "")
            rows.append(
                Row(
                    stack_name,
                    resource["ResourceType"],
                    logical_id,
                    resource["ResourceStatus"],
                    details.get(physical_id, physical_id),
                )
            )
        template = json.loads(template_path.read_text())
        for logical_id, resource in template.get("Resources", {}).items():
            if logical_id not in created:
                skipped.setdefault(resource["Type"], []).append(f"{stack_name}/{logical_id}")
    return rows, skipped, failed


def stack_outputs(clients: Clients, templates: dict[str, Path]) -> list[str]:
    """Each stack's own outputs as CloudFormation reports them (e.g. each team's inference profile ARNs), not
    the exports CDK adds for the stacks that import from it."""
    cloudformation = clients("cloudformation")
    return [
        f"{stack_name}  {output['OutputKey']}  {output['OutputValue']}"
        for stack_name in templates
        for output in cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
        if not output["OutputKey"].startswith("ExportsOutput")
    ]


def creation_policies(templates: dict[str, Path]) -> list[str]:
    """Resources whose create waits for signals on AWS (CreationPolicy): stack/logical id, signal count."""
    waiting = []
    for stack_name, template_path in templates.items():
        for logical_id, resource in json.loads(template_path.read_text()).get("Resources", {}).items():
            if "ResourceSignal" in resource.get("CreationPolicy", {}):
                count = resource["CreationPolicy"]["ResourceSignal"].get("Count", 1)
                waiting.append(f"{stack_name}/{logical_id} ({count} signals)")
    return waiting


def print_table(rows: list[Row]) -> None:
    headers = Row("STACK", "RESOURCE TYPE", "LOGICAL ID", "STATUS", "DETAIL")
    table = [headers, *rows]
    widths = [max(len(getattr(r, field)) for r in table) for field in Row.__dataclass_fields__]
    for row in table:
        cells = [getattr(row, field) for field in Row.__dataclass_fields__]
        print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--env", default="dev", help="environment: config/<env>.yaml (default: dev)")
    parser.add_argument("--moto-log", type=Path, help="keep moto's log here (default: a temporary file)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.env)
    except ConfigError as error:
        print(f"aigw: bad configuration, nothing was deployed:\n{error}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="aigw-local-") as scratch:
        log_path = args.moto_log or Path(scratch) / "moto.log"
        assembly = Path(scratch) / "cdk.out"
        with moto_server(config.account, log_path) as endpoint:
            env = local_aws_environment(endpoint, config.region)
            print(f"local AWS (moto) at {endpoint}, account {config.account}, region {config.region}", flush=True)
            session = boto3.Session(
                aws_access_key_id="testing", aws_secret_access_key="testing", region_name=config.region
            )
            clients = Clients(session, endpoint)
            certificate = import_certificate(clients("acm"), f"aigw.{config.region}.local")
            context = ["-c", f"env={args.env}", "-c", f"certificate_arn={certificate}"]
            output = ["--output", str(assembly)]
            run([*CDK, "bootstrap", f"aws://{config.account}/{config.region}", *context, *output], env)
            run([*CDK, "deploy", "--all", "--require-approval", "never", *context, *output], env)
            templates = stack_artifacts(assembly)
            rows, skipped, failed = read_back(clients, templates)
            outputs = stack_outputs(clients, templates)
            waiting = creation_policies(templates)

    print()
    print_table(rows)
    print()
    if outputs:
        print("Stack outputs:", *outputs, sep="\n  ")
        print()
    stood_in = sorted({row.resource_type for row in rows if row.detail.startswith(STAND_IN_PREFIX)})
    if stood_in:
        print(f"Stand-ins for types moto lacks ({', '.join(stood_in)}): CloudFormation completes, nothing runs;")
        print("scripts/moto_server.py answers their attributes so the stacks that read them can deploy.")
    if any(row.resource_type == "AWS::AutoScaling::AutoScalingGroup" for row in rows):
        print(
            "Auto Scaling groups: the detail is the AZs of the group's subnets, which the deploy sets; "
            "moto places the instances itself (AWS balances them across those AZs)."
        )
    if waiting:
        print(
            f"moto does not wait for instance signals (CreationPolicy): {', '.join(waiting)} completed without them; "
            "on AWS the create completes only when that many instances report that they serve."
        )
    custom = sorted({row.resource_type for row in rows if row.resource_type.startswith("Custom::")})
    if custom:
        print(f"Custom resources ({', '.join(custom)}) report CREATE_COMPLETE, but moto runs no Lambda: their")
        print("effect is proven by the template assertions in tests/, not by this deploy.")
    if skipped:
        print("Resource types in the templates that the emulator skipped (not modelled by moto's CloudFormation):")
        for resource_type, where in sorted(skipped.items()):
            print(f"  {resource_type}: {', '.join(where)}")
    else:
        print("The emulator created every resource in the templates.")
    if failed:
        print("Stacks that did not complete:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
