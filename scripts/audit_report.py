"""The compliance evidence an auditor reads, written from a cloud assembly alone.

    python scripts/audit_report.py [CDK_OUT]        (default: cdk.out)

Reads the synthesized templates and validation-report.json (never the config: it shows what will be
deployed), writes audit-report.md and audit-report.html into that folder with the architecture diagram drawn
from the same templates (scripts/diagram.py: architecture.svg and .png beside them), and exits 1 when any
control FAILs. For each control: the resources that implement it, by stack and logical id, with the
property values that prove it, or a FAIL naming the resource and what is missing.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import cloud_assembly, diagram, sarif
from scripts.cloud_assembly import Resource

HOT_DAYS = 90  # the field report's immediately-queryable period
AUDIT_RETENTION_DAYS = 365  # PCI DSS v4.0.1 10.5.1: 12 months of audit history
STRONG_TLS_POLICIES = ("ELBSecurityPolicy-TLS13-", "ELBSecurityPolicy-TLS-1-2-", "ELBSecurityPolicy-FS-1-2-")
PACKS_FILE = "aigw-compliance.json"  # written by the compliance gate: which packs ran


@dataclass(frozen=True)
class Finding:
    resource: str
    proof: str
    passed: bool


Control = Callable[[list[Resource]], Iterator[Finding]]


def of_type(resources: list[Resource], *types: str) -> list[Resource]:
    return [r for r in resources if r.type in types]


def show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def check(resource: Resource, passed: bool, proof: str) -> Finding:
    return Finding(resource.id, proof, passed)


# -- controls --------------------------------------------------------------------------------------


def encryption_at_rest(resources: list[Resource]) -> Iterator[Finding]:
    for r in of_type(resources, "AWS::S3::Bucket"):
        rules = r.properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithms = [rule.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules]
        yield check(r, bool(algorithms) and all(algorithms), f"SSEAlgorithm={show(algorithms or None)}")
    for r in of_type(resources, "AWS::Logs::LogGroup"):
        yield check(r, "KmsKeyId" in r.properties, f"KmsKeyId={show(r.properties.get('KmsKeyId'))}")
    for r in of_type(resources, "AWS::SNS::Topic"):
        yield check(r, "KmsMasterKeyId" in r.properties, f"KmsMasterKeyId={show(r.properties.get('KmsMasterKeyId'))}")
    for r in of_type(resources, "AWS::SecretsManager::Secret"):
        yield check(r, "KmsKeyId" in r.properties, f"KmsKeyId={show(r.properties.get('KmsKeyId'))}")
    for r in of_type(resources, "AWS::ElastiCache::ReplicationGroup"):
        enabled = r.properties.get("AtRestEncryptionEnabled") is True
        yield check(r, enabled, f"AtRestEncryptionEnabled={show(r.properties.get('AtRestEncryptionEnabled'))}")
    for r in of_type(resources, "AWS::EC2::LaunchTemplate"):
        volumes = r.properties.get("LaunchTemplateData", {}).get("BlockDeviceMappings", [])
        encrypted = [v.get("Ebs", {}).get("Encrypted") for v in volumes]
        yield check(r, bool(encrypted) and all(e is True for e in encrypted), f"Ebs.Encrypted={show(encrypted)}")
    for r in of_type(resources, "AWS::DynamoDB::Table"):
        sse = r.properties.get("SSESpecification", {})
        yield check(r, sse.get("SSEEnabled") is True, f"SSESpecification={show(sse or None)}")
    for r in of_type(resources, "AWS::SQS::Queue"):
        key = r.properties.get("KmsMasterKeyId")
        yield check(r, key is not None, f"KmsMasterKeyId={show(key)}")
    for r in of_type(resources, "AWS::KinesisFirehose::DeliveryStream"):
        stream_key = r.properties.get("DeliveryStreamEncryptionConfigurationInput", {}).get("KeyType")
        destination = r.properties.get("ExtendedS3DestinationConfiguration", {})
        object_key = destination.get("EncryptionConfiguration", {}).get("KMSEncryptionConfig", {}).get("AWSKMSKeyARN")
        yield check(
            r,
            stream_key == "CUSTOMER_MANAGED_CMK" and object_key is not None,
            f"DeliveryStreamEncryptionConfigurationInput.KeyType={show(stream_key)}, "
            f"S3 KMSEncryptionConfig.AWSKMSKeyARN={show(object_key)}",
        )
    for r in of_type(resources, "AWS::KMS::Key"):
        # A signing key (asymmetric, SIGN_VERIFY) encrypts nothing at rest, and KMS cannot rotate it.
        if r.properties.get("KeyUsage") == "SIGN_VERIFY":
            continue
        yield check(
            r,
            r.properties.get("EnableKeyRotation") is True,
            f"EnableKeyRotation={show(r.properties.get('EnableKeyRotation'))}",
        )


def encryption_in_transit(resources: list[Resource]) -> Iterator[Finding]:
    for r in of_type(resources, "AWS::ElasticLoadBalancingV2::Listener"):
        protocol, policy = r.properties.get("Protocol"), r.properties.get("SslPolicy", "")
        ok = protocol == "HTTPS" and str(policy).startswith(STRONG_TLS_POLICIES)
        yield check(r, ok, f"Protocol={protocol}, SslPolicy={policy or None}")
    for r in of_type(resources, "AWS::ElastiCache::ReplicationGroup"):
        ok = r.properties.get("TransitEncryptionEnabled") is True
        yield check(r, ok, f"TransitEncryptionEnabled={show(r.properties.get('TransitEncryptionEnabled'))}")
    tls_only = {
        _policy_target(p)
        for p in of_type(resources, "AWS::S3::BucketPolicy", "AWS::SNS::TopicPolicy")
        if _denies_plain_http(p)
    }
    for r in of_type(resources, "AWS::S3::Bucket", "AWS::SNS::Topic"):
        yield check(
            r,
            r.logical_id in tls_only,
            "a policy denies requests with aws:SecureTransport=false"
            if r.logical_id in tls_only
            else "no TLS-only policy",
        )


def _policy_target(policy: Resource) -> str | None:
    target = policy.properties.get("Bucket") or (policy.properties.get("Topics") or [None])[0]
    return target.get("Ref") if isinstance(target, dict) else None


def _denies_plain_http(policy: Resource) -> bool:
    statements = policy.properties.get("PolicyDocument", {}).get("Statement", [])
    return any(
        s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in statements
    )


def retention(resources: list[Resource]) -> Iterator[Finding]:
    for r in of_type(resources, "AWS::Logs::LogGroup"):
        days = r.properties.get("RetentionInDays")
        yield check(
            r, isinstance(days, int) and days >= HOT_DAYS, f"RetentionInDays={show(days)} (at least {HOT_DAYS})"
        )
    for r in of_type(resources, "AWS::S3::Bucket"):
        rules = r.properties.get("LifecycleConfiguration", {}).get("Rules", [])
        expirations = [rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule]
        locked = r.properties.get("ObjectLockEnabled") is True
        floor = AUDIT_RETENTION_DAYS if locked else HOT_DAYS
        proof = (
            f"ExpirationInDays={show(expirations or None)} (at least {floor}{', an audit bucket' if locked else ''})"
        )
        if locked:
            lock_days = (
                r.properties.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {}).get("Days")
            )
            proof += f", ObjectLock DefaultRetention.Days={show(lock_days)}"
            ok = bool(expirations) and min(expirations) >= floor and isinstance(lock_days, int) and lock_days >= floor
        else:
            ok = bool(expirations) and min(expirations) >= floor
        yield check(r, ok, proof)


def network_isolation(resources: list[Resource]) -> Iterator[Finding]:
    for r in of_type(
        resources, "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway"
    ):
        yield check(r, False, f"{r.type} gives the network a path to the internet")
    for r in of_type(resources, "AWS::EC2::VPC"):
        yield check(
            r,
            True,
            "no internet or NAT gateway in the templates"
            if not of_type(resources, "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway")
            else "see the gateways above",
        )
    for r in of_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        scheme = r.properties.get("Scheme", "internet-facing")
        yield check(r, scheme == "internal", f"Scheme={scheme}")
    for r in of_type(resources, "AWS::EC2::VPCEndpoint"):
        service = show(r.properties.get("ServiceName"))
        if "bedrock" not in service:
            continue
        statements = r.properties.get("PolicyDocument", {}).get("Statement", [])
        wildcard = any("*" in _as_list(s.get("Resource")) or "*" in _as_list(s.get("Action")) for s in statements)
        actions = sorted({a for s in statements for a in _as_list(s.get("Action"))})
        yield check(
            r,
            bool(statements) and not wildcard,
            f"ServiceName={service}, policy actions={show(actions)}, no '*'={not wildcard}",
        )
    for r in of_type(resources, "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"):
        rules = r.properties.get("SecurityGroupIngress", []) if r.type == "AWS::EC2::SecurityGroup" else [r.properties]
        open_rules = [rule for rule in rules if rule.get("CidrIp") == "0.0.0.0/0" or rule.get("CidrIpv6") == "::/0"]
        if open_rules:
            yield check(r, False, f"ingress from anywhere: {show(open_rules)}")


def multi_az(resources: list[Resource]) -> Iterator[Finding]:
    azs = sorted(
        {
            r.properties["AvailabilityZone"]
            for r in of_type(resources, "AWS::EC2::Subnet")
            if isinstance(r.properties.get("AvailabilityZone"), str)
        }
    )
    for r in of_type(resources, "AWS::EC2::VPC"):
        yield check(r, len(azs) >= 2, f"subnets in {len(azs)} AZs: {', '.join(azs)}")
    for r in of_type(resources, "AWS::AutoScaling::AutoScalingGroup"):
        subnets = r.properties.get("VPCZoneIdentifier", [])
        yield check(
            r, len(subnets) >= 2, f"VPCZoneIdentifier: {len(subnets)} subnets, MinSize={r.properties.get('MinSize')}"
        )
    for r in of_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        subnets = r.properties.get("Subnets", [])
        yield check(r, len(subnets) >= 2, f"Subnets: {len(subnets)}")
    for r in of_type(resources, "AWS::ElastiCache::ReplicationGroup"):
        ok = r.properties.get("MultiAZEnabled") is True and int(r.properties.get("NumCacheClusters", 1)) >= 2
        yield check(
            r,
            ok,
            ", ".join(
                f"{key}={show(r.properties.get(key))}"
                for key in ("MultiAZEnabled", "NumCacheClusters", "AutomaticFailoverEnabled")
            ),
        )


def least_privilege(resources: list[Resource]) -> Iterator[Finding]:
    for r in of_type(resources, "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role"):
        documents = (
            [r.properties["PolicyDocument"]]
            if "PolicyDocument" in r.properties
            else [p["PolicyDocument"] for p in r.properties.get("Policies", [])]
        )
        statements = [s for d in documents for s in d.get("Statement", []) if s.get("Effect") == "Allow"]
        if not statements and r.type == "AWS::IAM::Role":
            continue
        unconditioned = [
            s.get("Sid", "?") for s in statements if "*" in _as_list(s.get("Resource")) and not s.get("Condition")
        ]
        any_action = [s.get("Sid", "?") for s in statements if "*" in _as_list(s.get("Action"))]
        ok = not unconditioned and not any_action
        proof = (
            f"{len(statements)} statements; every '*' resource has a condition"
            if ok
            else f"unconditioned '*': {show(unconditioned + any_action)}"
        )
        yield check(r, ok, proof)


def logging(resources: list[Resource]) -> Iterator[Finding]:
    flow_logged = {show(r.properties.get("ResourceId")) for r in of_type(resources, "AWS::EC2::FlowLog")}
    for r in of_type(resources, "AWS::EC2::VPC"):
        ok = show({"Ref": r.logical_id}) in flow_logged
        yield check(r, ok, "VPC flow logs (ALL traffic) to CloudWatch Logs" if ok else "no flow log")
    for r in of_type(resources, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        attributes = {a["Key"]: a["Value"] for a in r.properties.get("LoadBalancerAttributes", [])}
        yield check(
            r,
            attributes.get("access_logs.s3.enabled") == "true",
            f"access_logs.s3.enabled={attributes.get('access_logs.s3.enabled')}",
        )
    # The audit records' path: their log group, subscribed to a Firehose stream that writes to a locked bucket.
    subscribed = {
        show(r.properties.get("LogGroupName")): r for r in of_type(resources, "AWS::Logs::SubscriptionFilter")
    }
    audit_groups = [
        r for r in of_type(resources, "AWS::Logs::LogGroup") if str(r.properties.get("LogGroupName")).endswith("/audit")
    ]
    for r in audit_groups:
        subscription = subscribed.get(show({"Ref": r.logical_id}))
        proof = f"LogGroupName={r.properties.get('LogGroupName')}, the gateway's audit records: "
        yield check(
            r,
            subscription is not None and subscription.properties.get("FilterPattern") == "",
            proof
            + (
                f"every record to {show(subscription.properties.get('DestinationArn'))}"
                if subscription
                else "no subscription filter"
            ),
        )
    if not audit_groups:
        yield Finding("(none)", "no audit log group in the templates", False)
    for r in of_type(resources, "AWS::KinesisFirehose::DeliveryStream"):
        destination = r.properties.get("ExtendedS3DestinationConfiguration", {})
        errors, logged = destination.get("ErrorOutputPrefix"), destination.get("CloudWatchLoggingOptions", {})
        yield check(
            r,
            bool(destination.get("Prefix")) and bool(errors) and logged.get("Enabled") is True,
            f"Prefix={show(destination.get('Prefix'))}, ErrorOutputPrefix={show(errors)}, "
            f"CloudWatchLoggingOptions.Enabled={show(logged.get('Enabled'))}",
        )


CONTROLS: dict[str, Control] = {
    "Encryption at rest": encryption_at_rest,
    "Encryption in transit": encryption_in_transit,
    "Retention": retention,
    "Network isolation": network_isolation,
    "Multi-AZ": multi_az,
    "Least privilege": least_privilege,
    "Logging": logging,
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- the compliance packs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Pack:
    name: str
    violations: int
    acknowledgments: list[tuple[str, str, str]]  # rule, where, reason
    error: str | None = None  # why the pack did not run to the end

    @property
    def passed(self) -> bool:
        return not self.violations and not self.error

    @property
    def summary(self) -> str:
        return f"did not run: {self.error}" if self.error else f"{self.violations} unacknowledged findings"


def packs(assembly: Path) -> list[Pack]:
    report = json.loads((assembly / "validation-report.json").read_bytes())
    by_name = {p["pluginName"]: p for p in report["pluginReports"]}
    packs_file = assembly / PACKS_FILE
    names = json.loads(packs_file.read_bytes())["packs"] if packs_file.exists() else []
    names += [name for name in by_name if name not in names]
    result = []
    for name in names:
        plugin = by_name.get(name, {"violations": [], "suppressedViolations": []})
        acknowledged = [
            (s["ruleName"], s.get("acknowledgedAt") or c.get("constructPath", "?"), s.get("reason", ""))
            for s in plugin.get("suppressedViolations", [])
            for c in s.get("violatingConstructs", [{}])
        ]
        violations = sum(len(v["violatingConstructs"]) for v in plugin["violations"])
        result.append(Pack(name, violations, acknowledged, sarif.failed(plugin)))
    return result


# -- rendering -------------------------------------------------------------------------------------


def evaluate(resources: list[Resource]) -> dict[str, list[Finding]]:
    return {name: list(control(resources)) for name, control in CONTROLS.items()}


def markdown(results: dict[str, list[Finding]], pack_results: list[Pack], assembly: Path) -> str:
    lines = [
        "# aigw compliance evidence",
        "",
        f"From the cloud assembly `{assembly.name}` (templates and validation report).",
        "",
    ]
    failed = sum(not f.passed for findings in results.values() for f in findings)
    lines += [f"**Result: {'FAIL' if failed else 'PASS'}** ({failed} failing findings)", ""]
    lines += [
        "## Architecture",
        "",
        "Drawn from the same templates: subnets by AZ, what sits in them, the flows both sides' security groups "
        "allow, and the IAM and delivery wiring outside the VPC.",
        "",
        f"![architecture]({diagram.NAME}.svg)",
        "",
    ]
    for name, findings in results.items():
        status = "FAIL" if any(not f.passed for f in findings) or not findings else "PASS"
        lines += [f"## {name}: {status}", "", "| | resource | evidence |", "|---|---|---|"]
        lines += [
            f"| {'PASS' if f.passed else '**FAIL**'} | `{f.resource}` | {f.proof.replace('|', '/')} |" for f in findings
        ]
        if not findings:
            lines.append("| **FAIL** | (none) | no resource in the templates implements this control |")
        lines.append("")
    lines += ["## Compliance packs", ""]
    for pack in pack_results:
        lines += [
            f"### {pack.name}: {'PASS' if pack.passed else 'FAIL'} ({pack.summary})",
            "",
        ]
        if pack.acknowledgments:
            lines += ["| rule | acknowledged on | reason |", "|---|---|---|"]
            lines += [
                f"| {rule} | `{where}` | {reason.replace('|', '/')} |" for rule, where, reason in pack.acknowledgments
            ]
        else:
            lines.append("No acknowledgments.")
        lines.append("")
    return "\n".join(lines)


def to_html(markdown_text: str) -> str:
    """The same report as a standalone page (headings, tables, paragraphs; nothing else is used)."""
    body, table = [], False
    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not table:
                body.append("<table>")
                table = True
                body.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells) + "</tr>")
            else:
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if table:
            body.append("</table>")
            table = False
        if image := IMAGE.fullmatch(line):
            body.append(f"<p><img src='{html.escape(image[2])}' alt='{html.escape(image[1])}'></p>")
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    if table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}img{max-width:100%}"
    )
    head = f"<meta charset='utf-8'><title>aigw compliance evidence</title><style>{style}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(body)}</body></html>\n"


IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _inline(text: str) -> str:
    escaped = html.escape(text)
    for marker, tag in (("**", "strong"), ("`", "code")):
        parts = escaped.split(marker)
        escaped = "".join(f"<{tag}>{p}</{tag}>" if i % 2 else p for i, p in enumerate(parts))
    return escaped


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    assembly = Path(args[0] if args else "cdk.out")
    if not (assembly / "manifest.json").is_file() or not (assembly / "validation-report.json").is_file():
        print(f"audit-report: {assembly} is not a synthesized cloud assembly (run `make synth` first)", file=sys.stderr)
        return 2
    results = evaluate(cloud_assembly.resources(assembly))
    pack_results = packs(assembly)
    diagram.render(assembly)
    text = markdown(results, pack_results, assembly)
    (assembly / "audit-report.md").write_text(text + "\n", encoding="utf-8")
    (assembly / "audit-report.html").write_text(to_html(text), encoding="utf-8")
    failing = [
        f"{name}: {f.resource}: {f.proof}" for name, findings in results.items() for f in findings if not f.passed
    ]
    failing += [f"{p.name}: {p.summary}" for p in pack_results if not p.passed]
    print(f"wrote {assembly / 'audit-report.md'} and {assembly / 'audit-report.html'}")
    for line in failing:
        print(f"FAIL {line}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
