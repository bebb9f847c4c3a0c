"""The deployed architecture, drawn from a cloud assembly alone (never the config: it shows what will be deployed).

    python scripts/diagram.py [CDK_OUT] [--out DIR] [--name NAME]    (default: cdk.out, beside the templates)

docs/architecture-prod.* is this for `make synth ENV=prod`, kept current by a test: after a change that moves it,
`python scripts/diagram.py cdk.out --out docs --name architecture-prod`.

Writes architecture.dot, architecture.svg and architecture.png (Graphviz's `dot`). What is drawn is read from the
templates: the VPC and its subnets by AZ; each resource placed in subnets (load balancer, fleet, Redis, endpoints,
canary, transit gateway attachment) in the subnet group it sits in, with its AZs; the network flows that both
sides' security groups allow (an egress rule on one, an ingress rule on the other), with their ports; and outside
the VPC, the flows that the templates wire: IAM policies naming a resource (who may write or read what), log
subscriptions, delivery streams, schedules, dead-letter queues, access logs and alarm and budget notifications.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts import cloud_assembly
from scripts.cloud_assembly import Resource

FORMATS = ("svg", "png")
NAME = "architecture"

# Resource types drawn as nodes, and what they are called in a label. Anything else appears only through a flow.
KINDS = {
    "AWS::ElasticLoadBalancingV2::LoadBalancer": "load balancer",
    "AWS::AutoScaling::AutoScalingGroup": "Auto Scaling group",
    "AWS::ElastiCache::ReplicationGroup": "Redis (ElastiCache)",
    "AWS::EC2::VPCEndpoint": "VPC endpoint",
    "AWS::EC2::TransitGatewayAttachment": "transit gateway attachment",
    "AWS::Synthetics::Canary": "Synthetics canary",
    "AWS::Lambda::Function": "Lambda function",
    "AWS::KinesisFirehose::DeliveryStream": "Firehose delivery stream",
    "AWS::S3::Bucket": "S3 bucket",
    "AWS::Logs::LogGroup": "log group",
    "AWS::SNS::Topic": "SNS topic",
    "AWS::SQS::Queue": "SQS queue",
    "AWS::DynamoDB::Table": "DynamoDB table",
    "AWS::SecretsManager::Secret": "secret",
    "AWS::SSM::Parameter": "SSM parameter",
    "AWS::Events::Rule": "EventBridge rule",
    "AWS::CE::AnomalyMonitor": "Cost Anomaly Detection",
}
# Always drawn outside the VPC, even with no flow: what an auditor looks for.
ANCHORS = {
    "AWS::SNS::Topic",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Lambda::Function",
    "AWS::CE::AnomalyMonitor",
}
NAME_PROPERTIES = ("DeliveryStreamName", "LogGroupName", "BucketName", "TopicName", "QueueName", "FunctionName",
                   "TableName", "Name")  # fmt: skip
GENERIC_SEGMENTS = {"Resource", "Default"}
ANYWHERE = ipaddress.IPv4Network("0.0.0.0/0")


@dataclass(frozen=True)
class Rule:
    """One security group rule: traffic `direction` ("in"/"out") on ports `ports` with a peer that is a security
    group (`peer_group`) or an address range (`peer_cidr`)."""

    group: str
    direction: str
    ports: tuple[int, int]
    peer_group: str | None = None
    peer_cidr: ipaddress.IPv4Network | None = None


@dataclass
class Subnet:
    id: str
    az: str
    cidr: ipaddress.IPv4Network
    group: str


@dataclass
class Architecture:
    """What the diagram shows, independent of how it is drawn (tests read it)."""

    title: str
    stacks: dict[str, str]  # artifact id -> stack name
    vpc_cidr: str = ""
    subnets: dict[str, Subnet] = field(default_factory=dict)
    placed: dict[str, list[str]] = field(default_factory=dict)  # node -> its subnets
    nodes: dict[str, str] = field(default_factory=dict)  # node -> label
    stack_of: dict[str, str] = field(default_factory=dict)  # node -> artifact id
    flows: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    notes: list[str] = field(default_factory=list)

    @property
    def azs(self) -> list[str]:
        return sorted({subnet.az for subnet in self.subnets.values()})


class Assembly:
    """The templates of a cloud assembly and the references between their resources, across stacks."""

    def __init__(self, directory: Path) -> None:
        found = cloud_assembly.stacks(directory)
        self.stacks = {stack.id: stack.name for stack in found}
        self.regions = {stack.region for stack in found if stack.region}
        self.resources = {resource.id: resource for stack in found for resource in stack.resources()}
        self.exports: dict[str, tuple[str, Any]] = {
            output["Export"]["Name"]: (stack.id, output["Value"])
            for stack in found
            for output in stack.template.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
        }

    def of_type(self, *types: str) -> list[Resource]:
        return [resource for resource in self.resources.values() if resource.type in types]

    def refs(self, value: Any, stack: str) -> set[str]:
        """The resources `value` (a property of a resource of `stack`) refers to: Ref, Fn::GetAtt, Fn::Sub and,
        through the exporting stack's outputs, Fn::ImportValue."""
        found: set[str] = set()
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "Ref" and isinstance(inner, str):
                    found.add(f"{stack}/{inner}")
                elif key == "Fn::GetAtt":
                    target = inner[0] if isinstance(inner, list) else str(inner).split(".", 1)[0]
                    found.add(f"{stack}/{target}")
                elif key == "Fn::ImportValue" and isinstance(inner, str) and inner in self.exports:
                    exporter, exported = self.exports[inner]
                    found |= self.refs(exported, exporter)
                elif key == "Fn::Sub":
                    text = inner[0] if isinstance(inner, list) else inner
                    found |= {f"{stack}/{name}" for name in re.findall(r"\$\{([A-Za-z0-9]+)[.}]", text)}
                    found |= self.refs(inner[1] if isinstance(inner, list) else {}, stack)
                else:
                    found |= self.refs(inner, stack)
        elif isinstance(value, list):
            for inner in value:
                found |= self.refs(inner, stack)
        return {ref for ref in found if ref in self.resources}

    def cidr(self, value: Any, stack: str) -> ipaddress.IPv4Network | None:
        """An address range as written, or a VPC's or subnet's own (`Fn::GetAtt: [Vpc, CidrBlock]`, as CDK writes
        `Peer.ipv4(vpc.vpc_cidr_block)`); None when only deploy time knows it."""
        if isinstance(value, dict) and (target := self.ref(value, stack)):
            value = self.resources[target].properties.get("CidrBlock")
        try:
            return ipaddress.IPv4Network(value) if isinstance(value, str) else None
        except ValueError:
            return None

    def ref(self, value: Any, stack: str) -> str | None:
        """The one resource `value` refers to, also when it is written out as an ARN or a name (to avoid a
        dependency cycle, say): matched against the names the templates give resources."""
        found = sorted(self.refs(value, stack))
        if not found and isinstance(value, str):
            name = re.split(r"[:/]", value)[-1]
            found = sorted(
                resource.id
                for resource in self.resources.values()
                if any(resource.properties.get(key) == name for key in NAME_PROPERTIES)
            )
        return found[0] if found else None


def label_path(resource: Resource) -> str:
    """The construct path without its stack and the generic last segments: what to search for in the code."""
    segments = resource.path.split("/")[1:]
    while len(segments) > 1 and segments[-1] in GENERIC_SEGMENTS:
        segments.pop()
    return "/".join(segments)


def subnets_of(assembly: Assembly, resource: Resource) -> list[str]:
    p, stack = resource.properties, resource.stack
    value: Any = {
        "AWS::ElasticLoadBalancingV2::LoadBalancer": p.get("Subnets"),
        "AWS::AutoScaling::AutoScalingGroup": p.get("VPCZoneIdentifier"),
        "AWS::EC2::VPCEndpoint": p.get("SubnetIds"),
        "AWS::EC2::TransitGatewayAttachment": p.get("SubnetIds"),
        "AWS::Lambda::Function": p.get("VpcConfig", {}).get("SubnetIds"),
        "AWS::Synthetics::Canary": p.get("VPCConfig", {}).get("SubnetIds"),
    }.get(resource.type)
    if resource.type == "AWS::ElastiCache::ReplicationGroup":
        group = assembly.ref(p.get("CacheSubnetGroupName"), stack)
        value = assembly.resources[group].properties.get("SubnetIds") if group else None
        stack = group.split("/")[0] if group else stack
    if resource.type == "AWS::EC2::VPCEndpoint" and p.get("VpcEndpointType") == "Gateway":
        # A gateway endpoint sits in route tables: the subnets associated with them.
        tables = assembly.refs(p.get("RouteTableIds"), stack)
        return sorted(
            subnet
            for association in assembly.of_type("AWS::EC2::SubnetRouteTableAssociation")
            if assembly.ref(association.properties.get("RouteTableId"), association.stack) in tables
            and (subnet := assembly.ref(association.properties.get("SubnetId"), association.stack))
        )
    return sorted(assembly.refs(value, stack)) if value else []


def security_groups_of(assembly: Assembly, resource: Resource) -> set[str]:
    p, stack = resource.properties, resource.stack
    if resource.type == "AWS::AutoScaling::AutoScalingGroup":
        template = assembly.ref(p.get("LaunchTemplate", {}).get("LaunchTemplateId"), stack)
        if not template:
            return set()
        data = assembly.resources[template].properties.get("LaunchTemplateData", {})
        interfaces = [interface.get("Groups") for interface in data.get("NetworkInterfaces", [])]
        return assembly.refs([data.get("SecurityGroupIds"), interfaces], template.split("/")[0])
    value = {
        "AWS::ElasticLoadBalancingV2::LoadBalancer": p.get("SecurityGroups"),
        "AWS::ElastiCache::ReplicationGroup": p.get("SecurityGroupIds"),
        "AWS::EC2::VPCEndpoint": p.get("SecurityGroupIds"),
        "AWS::Lambda::Function": p.get("VpcConfig", {}).get("SecurityGroupIds"),
        "AWS::Synthetics::Canary": p.get("VPCConfig", {}).get("SecurityGroupIds"),
    }.get(resource.type)
    return assembly.refs(value, stack) if value else set()


def security_group_rules(assembly: Assembly, unresolved: list[str] | None = None) -> list[Rule]:
    """Every TCP rule of every security group, inline or standalone. A group given no egress rule at all keeps
    EC2's default, all traffic out; CloudFormation drops that default once any egress rule is added (CDK's
    "disallow all traffic" placeholder, ICMP to 255.255.255.255/32, is such a rule and allows nothing). A rule
    whose ports or address range the templates leave to deploy time is not drawn; it is named in `unresolved`."""
    rules: list[Rule] = []
    with_egress: set[str] = set()

    def add(group: str, direction: str, body: dict[str, Any], stack: str) -> None:
        if direction == "out":
            with_egress.add(group)
        protocol = str(body.get("IpProtocol", "-1"))
        if protocol not in ("tcp", "6", "-1"):
            return
        ports = (
            (0, 65535) if protocol == "-1" else (_number(body.get("FromPort", 0)), _number(body.get("ToPort", 65535)))
        )
        peer = body.get("SourceSecurityGroupId" if direction == "in" else "DestinationSecurityGroupId")
        cidr = assembly.cidr(body["CidrIp"], stack) if "CidrIp" in body else None
        if ports[0] is None or ports[1] is None or ("CidrIp" in body and cidr is None):
            if unresolved is not None:
                unresolved.append(f"{group} {direction}")
            return
        rules.append(Rule(group, direction, (ports[0], ports[1]), peer_group=assembly.ref(peer, stack), peer_cidr=cidr))

    groups = assembly.of_type("AWS::EC2::SecurityGroup")
    for group in groups:
        for direction, key in (("in", "SecurityGroupIngress"), ("out", "SecurityGroupEgress")):
            for body in group.properties.get(key, []):
                add(group.id, direction, body, group.stack)
    for direction, standalone in (("in", "AWS::EC2::SecurityGroupIngress"), ("out", "AWS::EC2::SecurityGroupEgress")):
        for resource in assembly.of_type(standalone):
            if owner := assembly.ref(resource.properties.get("GroupId"), resource.stack):
                add(owner, direction, resource.properties, resource.stack)
    rules += [Rule(group.id, "out", (0, 65535), peer_cidr=ANYWHERE) for group in groups if group.id not in with_egress]
    return rules


def _number(value: Any) -> int | None:
    """A port as the template writes it (a number or a numeric string); None when it is computed at deploy time."""
    return int(value) if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()) else None


def _allowed(
    rules: list[Rule], groups: set[str], direction: str, peer_groups: set[str], peer_cidrs: list[Any]
) -> set[tuple[int, int]]:
    """The port ranges that `groups` allow in `direction` to or from a peer that has `peer_groups` and sits in
    `peer_cidrs` (an address rule must cover all of them)."""
    return {
        rule.ports
        for rule in rules
        if rule.group in groups
        and rule.direction == direction
        and (
            rule.peer_group in peer_groups
            or (
                rule.peer_cidr is not None and bool(peer_cidrs) and all(c.subnet_of(rule.peer_cidr) for c in peer_cidrs)
            )
        )
    }


def _both_allow(out: set[tuple[int, int]], into: set[tuple[int, int]]) -> set[str]:
    found = set()
    for low_out, high_out in out:
        for low_in, high_in in into:
            low, high = max(low_out, low_in), min(high_out, high_in)
            if low <= high:
                found.add(_ports(low, high))
    return found


def _ports(low: int, high: int) -> str:
    return f"tcp {low}" if low == high else "all tcp" if (low, high) == (0, 65535) else f"tcp {low}-{high}"


def describe(resource: Resource, assembly: Assembly) -> str:
    """A line of what matters about `resource` to an auditor, from its properties."""
    p = resource.properties
    if resource.type == "AWS::AutoScaling::AutoScalingGroup":
        return f"{p.get('MinSize')} to {p.get('MaxSize')} instances, health check {p.get('HealthCheckType', 'EC2')}"
    if resource.type == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        return f"{p.get('Scheme', 'internet-facing')}, {p.get('Type', 'application')}"
    if resource.type == "AWS::ElastiCache::ReplicationGroup":
        return (
            f"{p.get('NumCacheClusters', 1)} nodes, Multi-AZ {p.get('MultiAZEnabled', False)}, "
            f"TLS {p.get('TransitEncryptionEnabled', False)}, at rest {p.get('AtRestEncryptionEnabled', False)}"
        )
    if resource.type == "AWS::S3::Bucket":
        rules = p.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
        algorithm = rules[0].get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") if rules else "none"
        return f"encryption {algorithm}, versioning {p.get('VersioningConfiguration', {}).get('Status', 'off')}"
    if resource.type == "AWS::Logs::LogGroup":
        return f"{'KMS' if 'KmsKeyId' in p else 'no KMS key'}, {p.get('RetentionInDays', 'never expires')} days"
    if resource.type == "AWS::Lambda::Function":
        return f"{p.get('Runtime', '')}, {'in the VPC' if 'VpcConfig' in p else 'outside the VPC'}"
    if resource.type == "AWS::Events::Rule":
        return str(p.get("ScheduleExpression", "event pattern"))
    return ""


def _endpoint_service(resource: Resource) -> str:
    name = resource.properties.get("ServiceName")
    if isinstance(name, dict):  # Fn::Join of com.amazonaws., the region, .s3
        name = "".join(part if isinstance(part, str) else "" for part in name.get("Fn::Join", ["", []])[1])
    return str(name).rsplit(".", 1)[-1] if str(name).startswith("com.amazonaws.") else str(name)


def build(directory: Path) -> Architecture:
    assembly = Assembly(directory)
    environments = "/".join(sorted(assembly.regions))
    architecture = Architecture(title=f"{', '.join(assembly.stacks.values())} ({environments})", stacks=assembly.stacks)
    for vpc in assembly.of_type("AWS::EC2::VPC"):
        architecture.vpc_cidr = str(vpc.properties.get("CidrBlock", ""))
    for subnet in assembly.of_type("AWS::EC2::Subnet"):
        tags = {tag["Key"]: tag["Value"] for tag in subnet.properties.get("Tags", [])}
        architecture.subnets[subnet.id] = Subnet(
            subnet.id,
            str(subnet.properties.get("AvailabilityZone")),
            ipaddress.IPv4Network(subnet.properties["CidrBlock"]),
            tags.get("aws-cdk:subnet-name", label_path(subnet)),
        )

    # Nodes: what sits in subnets, interface endpoints of one stack and subnets folded into one node.
    members: dict[str, set[str]] = {}  # node -> its security groups
    endpoint_groups: dict[tuple[str, tuple[str, ...]], list[Resource]] = defaultdict(list)
    for resource in assembly.of_type(*KINDS):
        subnets = subnets_of(assembly, resource)
        if resource.type == "AWS::EC2::VPCEndpoint" and resource.properties.get("VpcEndpointType") == "Interface":
            endpoint_groups[(resource.stack, tuple(subnets))].append(resource)
            continue
        if subnets or resource.type in ANCHORS:
            add_node(architecture, resource, assembly, subnets)
            members[resource.id] = security_groups_of(assembly, resource)
    for (stack, subnet_ids), endpoints in sorted(endpoint_groups.items()):
        first = endpoints[0]
        services = sorted(_endpoint_service(endpoint) for endpoint in endpoints)
        node = first.id
        kind = "interface endpoints" if len(endpoints) > 1 else "interface endpoint"
        architecture.nodes[node] = f"{stack} · {kind} (PrivateLink)\n" + textwrap.fill(
            ", ".join(services), 48, break_long_words=False, break_on_hyphens=False
        )
        architecture.stack_of[node], architecture.placed[node] = stack, list(subnet_ids)
        members[node] = set().union(*(security_groups_of(assembly, endpoint) for endpoint in endpoints))

    add_network_flows(architecture, assembly, members)
    add_wired_flows(architecture, assembly)
    if not assembly.of_type("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway"):
        architecture.notes.append("no internet gateway, NAT gateway or egress-only gateway in any template")
    return architecture


def add_node(architecture: Architecture, resource: Resource, assembly: Assembly, subnets: list[str]) -> None:
    detail = describe(resource, assembly)
    if resource.type == "AWS::EC2::VPCEndpoint":
        detail = f"{_endpoint_service(resource)} ({resource.properties.get('VpcEndpointType', 'Interface')})"
    if resource.type == "AWS::EC2::TransitGatewayAttachment":
        detail = str(resource.properties.get("TransitGatewayId", ""))
    label = f"{resource.stack} · {KINDS[resource.type]}\n{label_path(resource)}"
    architecture.nodes[resource.id] = label + (f"\n{detail}" if detail else "")
    architecture.stack_of[resource.id] = resource.stack
    if subnets:
        architecture.placed[resource.id] = subnets


def add_network_flows(architecture: Architecture, assembly: Assembly, members: dict[str, set[str]]) -> None:
    """A flow wherever one node's security groups let traffic out to another's and the other's let it in. A gateway
    endpoint has no security group: its side is the prefix list, so any HTTPS egress reaching it counts."""
    unresolved: list[str] = []
    rules = security_group_rules(assembly, unresolved)
    if unresolved:
        architecture.notes.append(
            f"{len(unresolved)} security group rules not drawn: their ports or ranges are known only at deploy time"
        )
    cidrs = {node: [architecture.subnets[s].cidr for s in subnets] for node, subnets in architecture.placed.items()}
    for source, source_groups in sorted(members.items()):
        for target, target_groups in sorted(members.items()):
            if target == source or source not in cidrs or target not in cidrs:
                continue
            if assembly.resources[target].type != "AWS::EC2::VPCEndpoint" or target_groups:
                ports = _both_allow(
                    _allowed(rules, source_groups, "out", target_groups, cidrs[target]),
                    _allowed(rules, target_groups, "in", source_groups, cidrs[source]),
                )
            elif set(architecture.placed[source]) <= set(architecture.placed[target]):
                # A gateway endpoint: in the route tables of the source's subnets, reached by HTTPS to anywhere.
                ports = _both_allow(_allowed(rules, source_groups, "out", set(), [ANYWHERE]), {(443, 443)})
            else:
                ports = set()
            if ports:
                architecture.flows[(source, target)] |= ports
    # From outside the VPC: address ranges a node's security groups let in that are not the VPC's.
    vpc = ipaddress.IPv4Network(architecture.vpc_cidr) if architecture.vpc_cidr else None
    for node, groups in sorted(members.items()):
        inbound = [
            rule
            for rule in rules
            if rule.group in groups and rule.direction == "in" and rule.peer_cidr is not None
            and not (vpc and rule.peer_cidr.subnet_of(vpc))
        ]  # fmt: skip
        if inbound:
            ranges = ", ".join(sorted({str(rule.peer_cidr) for rule in inbound}))
            clients = f"clients: {ranges}"
            architecture.nodes.setdefault(clients, f"developers' networks\n{ranges}")
            architecture.flows[(clients, node)] |= {_ports(*rule.ports) for rule in inbound}
            # Their way in: a transit gateway the VPC's route tables send those ranges to.
            gateways = {route.properties.get("TransitGatewayId") for route in assembly.of_type("AWS::EC2::Route")}
            for attachment in assembly.of_type("AWS::EC2::TransitGatewayAttachment"):
                if attachment.properties.get("TransitGatewayId") in gateways - {None}:
                    architecture.flows[(clients, attachment.id)].add("routed")


def add_wired_flows(architecture: Architecture, assembly: Assembly) -> None:
    """Flows outside the VPC that the templates wire, between nodes (adding the far side as a node if needed)."""
    principals = principals_by_role(assembly)

    def flow(source: str | None, target: str | None, what: str) -> None:
        if not source or not target or source == target:
            return
        for end in (source, target):
            if end not in architecture.nodes:
                resource = assembly.resources[end]
                if resource.type not in KINDS:
                    return
                add_node(architecture, resource, assembly, [])
        architecture.flows[(source, target)].add(what)

    for policy in assembly.of_type("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        users = {
            user
            for role in assembly.refs(policy.properties.get("Roles"), policy.stack)
            for user in principals.get(role, set())
        }
        for statement in policy.properties.get("PolicyDocument", {}).get("Statement", []):
            if statement.get("Effect", "Allow") != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            verbs = ", ".join(sorted({action.split(":")[0] for action in actions}))
            for named in assembly.refs(statement.get("Resource"), policy.stack):
                for user in users:
                    flow(user, named, verbs)
    for subscription in assembly.of_type("AWS::Logs::SubscriptionFilter"):
        p = subscription.properties
        logs, destination = (assembly.ref(p.get(key), subscription.stack) for key in ("LogGroupName", "DestinationArn"))
        flow(logs, destination, "subscription")
    for stream in assembly.of_type("AWS::KinesisFirehose::DeliveryStream"):
        destination = stream.properties.get("ExtendedS3DestinationConfiguration", {})
        flow(stream.id, assembly.ref(destination.get("BucketARN"), stream.stack), "delivery")
    for rule in assembly.of_type("AWS::Events::Rule"):
        for rule_target in rule.properties.get("Targets", []):
            flow(rule.id, assembly.ref(rule_target.get("Arn"), rule.stack), "targets")
    for handler in assembly.of_type("AWS::Lambda::Function"):
        dead_letters = handler.properties.get("DeadLetterConfig", {}).get("TargetArn")
        flow(handler.id, assembly.ref(dead_letters, handler.stack), "dead letters")
    for config in assembly.of_type("AWS::Lambda::EventInvokeConfig"):
        failure = config.properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        invoked = assembly.ref(config.properties.get("FunctionName"), config.stack)
        flow(invoked, assembly.ref(failure, config.stack), "failed events")
    for bucket in assembly.of_type("AWS::S3::Bucket"):
        logging = bucket.properties.get("LoggingConfiguration", {}).get("DestinationBucketName")
        if bucket.id in architecture.nodes:
            flow(bucket.id, assembly.ref(logging, bucket.stack), "access logs")
    for balancer in assembly.of_type("AWS::ElasticLoadBalancingV2::LoadBalancer"):
        for attribute in balancer.properties.get("LoadBalancerAttributes", []):
            if attribute.get("Key") == "access_logs.s3.bucket":
                flow(balancer.id, assembly.ref(attribute.get("Value"), balancer.stack), "access logs")
    for canary in assembly.of_type("AWS::Synthetics::Canary"):
        flow(canary.id, assembly.ref(canary.properties.get("ArtifactS3Location"), canary.stack), "run artifacts")
    notify(architecture, assembly)


def notify(architecture: Architecture, assembly: Assembly) -> None:
    """Alarms and budgets, counted per stack, to the topics they notify."""
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for alarm in assembly.of_type("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
        for topic in assembly.refs([alarm.properties.get("AlarmActions"), alarm.properties.get("OKActions")],
                                   alarm.stack):  # fmt: skip
            counts[(alarm.stack, "CloudWatch alarms", topic)] += 1
    for budget in assembly.of_type("AWS::Budgets::Budget"):
        for topic in assembly.refs(budget.properties.get("NotificationsWithSubscribers"), budget.stack):
            counts[(budget.stack, "budgets", topic)] += 1
    for subscription in assembly.of_type("AWS::CE::AnomalySubscription"):
        monitors = assembly.refs(subscription.properties.get("MonitorArnList"), subscription.stack)
        for topic in assembly.refs(subscription.properties.get("Subscribers"), subscription.stack):
            for monitor in monitors:
                if monitor in architecture.nodes:
                    architecture.flows[(monitor, topic)].add("anomalies")
    for (stack, what, topic), count in sorted(counts.items()):
        node = f"{stack}: {what}"
        architecture.nodes.setdefault(node, f"{stack} · {what}")
        architecture.stack_of[node] = stack
        architecture.flows[(node, topic)].add(f"{count} notify")


def principals_by_role(assembly: Assembly) -> dict[str, set[str]]:
    """Role -> the nodes acting with it: functions, instances (through profile and launch template), delivery
    streams, canaries, log subscriptions."""
    users: dict[str, set[str]] = defaultdict(set)
    for resource in assembly.resources.values():
        p, stack = resource.properties, resource.stack
        roles: set[str] = set()
        if resource.type == "AWS::Lambda::Function":
            roles = assembly.refs(p.get("Role"), stack)
        elif resource.type == "AWS::Synthetics::Canary":
            roles = assembly.refs(p.get("ExecutionRoleArn"), stack)
        elif resource.type == "AWS::KinesisFirehose::DeliveryStream":
            roles = assembly.refs(p.get("ExtendedS3DestinationConfiguration", {}).get("RoleARN"), stack)
        elif resource.type == "AWS::AutoScaling::AutoScalingGroup":
            template = assembly.ref(p.get("LaunchTemplate", {}).get("LaunchTemplateId"), stack)
            data = assembly.resources[template].properties.get("LaunchTemplateData", {}) if template else {}
            for profile in assembly.refs(data.get("IamInstanceProfile"), stack):
                roles |= assembly.refs(assembly.resources[profile].properties.get("Roles"), stack)
        for role in roles:
            users[role].add(resource.id)
    return users


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(architecture: Architecture) -> str:
    """Graphviz source: the VPC with a cluster per subnet group (its subnets by AZ, what sits in them), then a
    cluster per stack for what sits outside the VPC, then the flows."""
    lines = [
        "digraph architecture {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=12, compound=true, newrank=true, '
        f"label={_quote(architecture.title + chr(10) + '; '.join(architecture.notes))}, labelloc=t];",
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    by_group: dict[str, list[Subnet]] = defaultdict(list)
    for subnet in architecture.subnets.values():
        by_group[subnet.group].append(subnet)
    vpc_label = f"VPC {architecture.vpc_cidr} · AZs {', '.join(architecture.azs)}"
    lines += ["  subgraph cluster_vpc {", f'    label={_quote(vpc_label)}; style=rounded; color="#1f6feb";']
    for index, (group, subnets) in enumerate(sorted(by_group.items())):
        subnets.sort(key=lambda subnet: subnet.az)
        strip = " | ".join(f"{subnet.az}\\n{subnet.cidr}" for subnet in subnets)
        lines += [
            f"    subgraph cluster_subnets_{index} {{",
            f'      label={_quote(group + " subnets")}; style=dashed; color="#888888";',
            f'      "subnets: {group}" [shape=record, style=filled, fillcolor="#e8f0fe", label="{{{strip}}}"];',
        ]
        for node, placed in sorted(architecture.placed.items()):
            if group in {architecture.subnets[s].group for s in placed[:1] if s in architecture.subnets}:
                azs = sorted({architecture.subnets[s].az for s in placed if s in architecture.subnets})
                label = architecture.nodes[node] + f"\nin {', '.join(azs)}"
                lines.append(f'      {_quote(node)} [label={_quote(label)}, fillcolor="#ffffff"];')
        lines.append("    }")
    lines.append("  }")
    outside: dict[str, list[str]] = defaultdict(list)
    for node in architecture.nodes:
        if node not in architecture.placed:
            outside[architecture.stack_of.get(node, "")].append(node)
    for index, (stack, nodes) in enumerate(sorted(outside.items())):
        if stack:
            title = f"{stack} stack ({architecture.stacks.get(stack, stack)}), outside the VPC"
            lines += [f"  subgraph cluster_stack_{index} {{", f"    label={_quote(title)}; style=rounded;"]
        for node in sorted(nodes):
            lines.append(f"    {_quote(node)} [label={_quote(architecture.nodes[node])}];")
        if stack:
            lines.append("  }")
    for (source, target), what in sorted(architecture.flows.items()):
        lines.append(f"  {_quote(source)} -> {_quote(target)} [label={_quote(', '.join(sorted(what)))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(assembly_dir: Path, out_dir: Path | None = None, name: str = NAME) -> dict[str, Path]:
    """Write the diagram's DOT source, SVG and PNG as `name`.*; return their paths by format."""
    out_dir = out_dir or assembly_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f"{name}.dot"
    source.write_text(dot(build(assembly_dir)), encoding="utf-8")
    written = {"dot": source}
    for fmt in FORMATS:
        target = out_dir / f"{name}.{fmt}"
        subprocess.run(["dot", f"-T{fmt}", "-o", str(target), str(source)], check=True)
        written[fmt] = target
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("assembly", nargs="?", type=Path, default=Path("cdk.out"))
    parser.add_argument("--out", type=Path, help="folder to write into (default: the assembly's)")
    parser.add_argument("--name", default=NAME, help=f"the files' name before the extension (default: {NAME})")
    args = parser.parse_args(argv)
    for fmt, path in render(args.assembly, args.out, args.name).items():
        print(f"{fmt}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
