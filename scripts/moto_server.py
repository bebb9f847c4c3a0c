"""moto's server, with the fixes our templates need in moto 5.2.5. Each fix names the bug it works around.

python scripts/moto_server.py -H 127.0.0.1 -p PORT    (same arguments as moto_server)
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from moto.cloudformation.models import CloudFormationBackend
from moto.core.common_models import CloudFormationModel
from moto.elbv2.models import FakeTargetGroup
from moto.kms.models import Key
from moto.secretsmanager.models import secretsmanager_backends
from moto.server import main
from moto.ssm.models import Parameter

STAND_IN_PREFIX = "moto-stand-in-"
_create_key_from_cloudformation = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _key_with_kms_style_tags(
    cls: type[Key], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Key:
    # AWS::KMS::Key spells tags Key/Value; moto hands them to its KMS tagger, which wants TagKey/TagValue
    # and fails the whole stack with KeyError: 'TagKey'.
    properties = cloudformation_json.get("Properties", {})
    tags = [{"TagKey": tag["Key"], "TagValue": tag["Value"]} for tag in properties.get("Tags", [])]
    fixed = {**cloudformation_json, "Properties": {**properties, "Tags": tags}}
    return _create_key_from_cloudformation(cls, resource_name, fixed, *args, **kwargs)  # type: ignore[no-any-return]


Key.create_from_cloudformation_json = classmethod(_key_with_kms_style_tags)  # type: ignore[assignment,method-assign]

_create_parameter_from_cloudformation = Parameter.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]


def _parameter_with_tag_map(
    cls: type[Parameter], resource_name: str, cloudformation_json: Any, *args: Any, **kwargs: Any
) -> Parameter:
    # AWS::SSM::Parameter spells its tags as a map ({"team": "x"}); moto reads a Key/Value list and fails with
    # TypeError after the parameter exists, so the stack's next DescribeStackResources re-creates it and answers
    # ParameterAlreadyExists.
    properties = cloudformation_json.get("Properties", {})
    tags = properties.get("Tags")
    if isinstance(tags, dict):
        listed = [{"Key": key, "Value": value} for key, value in tags.items()]
        cloudformation_json = {**cloudformation_json, "Properties": {**properties, "Tags": listed}}
    return _create_parameter_from_cloudformation(cls, resource_name, cloudformation_json, *args, **kwargs)  # type: ignore[no-any-return]


Parameter.create_from_cloudformation_json = classmethod(_parameter_with_tag_map)  # type: ignore[assignment,method-assign]

_execute_change_set = CloudFormationBackend.execute_change_set


def _execute_change_set_with_exports(
    self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    # create_stack registers a stack's Outputs exports; execute_change_set (what `cdk deploy` uses) neither
    # rebuilds the outputs from the applied template nor registers them, so a stack importing another's
    # values fails with "No export named … found".
    _execute_change_set(self, change_set_name, stack_name)
    for stack in self.stacks.values():
        if stack.status.endswith("_COMPLETE"):
            stack._parse_template()  # the template the change set applied
            stack.output_map = stack._create_output_map()
            for export in stack.exports:
                self.exports[export.name] = export


CloudFormationBackend.execute_change_set = _execute_change_set_with_exports  # type: ignore[method-assign]

_create_change_set = CloudFormationBackend.create_change_set


def _create_change_set_seeing_exports(self: CloudFormationBackend, *args: Any, **kwargs: Any) -> tuple[str, str]:
    # A stack made for a CREATE change set is given no exports to resolve Fn::ImportValue against
    # (create_stack passes them): hand it the region's, as CloudFormation does.
    change_set_id, stack_id = _create_change_set(self, *args, **kwargs)
    stack = self.stacks[stack_id]
    stack.cross_stack_resources = self.exports
    stack.resource_map.cross_stack_resources = self.exports
    return change_set_id, stack_id


CloudFormationBackend.create_change_set = _create_change_set_seeing_exports  # type: ignore[method-assign]

# A target group has no attributes for Fn::GetAtt in moto: a stack exporting one (the operations stack's dashboard
# and alarms name the gateway stack's target group) fails with AttributeError 'get_cfn_attribute'.
_TARGET_GROUP_ATTRIBUTES = ("TargetGroupFullName", "TargetGroupName", "TargetGroupArn", "LoadBalancerArns")


def _target_group_attribute(self: FakeTargetGroup, attribute_name: str) -> Any:
    if attribute_name == "TargetGroupFullName":  # targetgroup/<name>/<id>, the ARN's resource part
        return self.arn.split(":", 5)[5]
    if attribute_name == "TargetGroupName":
        return self.name
    if attribute_name == "LoadBalancerArns":
        return list(self.load_balancer_arns)
    return self.arn


FakeTargetGroup.has_cfn_attr = classmethod(lambda cls, attr: attr in _TARGET_GROUP_ATTRIBUTES)  # type: ignore[assignment,method-assign]
FakeTargetGroup.get_cfn_attribute = _target_group_attribute  # type: ignore[attr-defined]


class ReplicationGroupStandIn(CloudFormationModel):
    """moto has no ElastiCache replication groups in CloudFormation, and a stack that reads one's
    endpoint (Fn::GetAtt) fails on an undefined resource. This stand-in only answers with a fake
    endpoint; nothing runs. `make deploy-local` lists it as a stand-in, not as created."""

    __module__ = "moto.elasticache.stand_in"  # moto's model registry files a class under its service

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::ElastiCache::ReplicationGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ReplicationGroupId"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("PrimaryEndPoint.Address", "PrimaryEndPoint.Port")

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ReplicationGroupStandIn:
        return cls(
            f"{STAND_IN_PREFIX}{resource_name.lower()}", int(cloudformation_json["Properties"].get("Port", 6379))
        )

    @property
    def physical_resource_id(self) -> str:
        return self.name

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "PrimaryEndPoint.Address":
            return f"{self.name}.cache.local"
        return str(self.port)


class SecretFromCloudFormation(CloudFormationModel):
    """moto's Secrets Manager has no CloudFormation model: `AWS::SecretsManager::Secret` would be skipped
    and every reference to it would resolve to nothing. This one creates the secret in moto's Secrets
    Manager (a generated value, like GenerateSecretString), so it is real in the emulator."""

    __module__ = "moto.secretsmanager.from_cloudformation"

    def __init__(self, arn: str) -> None:
        self.arn = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SecretsManager::Secret"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "Id"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> SecretFromCloudFormation:
        properties = cloudformation_json.get("Properties", {})
        response = secretsmanager_backends[account_id][region_name].create_secret(
            name=properties.get("Name", resource_name),
            secret_string=properties.get("SecretString") or secrets.token_urlsafe(48),
            secret_binary=None,
            description=properties.get("Description"),
            tags=properties.get("Tags"),
            kms_key_id=properties.get("KmsKeyId") if isinstance(properties.get("KmsKeyId"), str) else None,
            client_request_token=None,
            replica_regions=[],
            force_overwrite=False,
        )
        return cls(json.loads(response)["ARN"])

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.arn


class ApplicationInferenceProfileStandIn(CloudFormationModel):
    """moto has no Bedrock inference profiles in CloudFormation, and the gateway stack reads each team profile's
    ARN and id (Fn::GetAtt). This stand-in answers with an ARN of AWS's form and a random 12-character id; nothing
    runs. `make deploy-local` lists it as a stand-in; the template assertions prove the profiles' settings."""

    __module__ = "moto.bedrock.stand_in"

    def __init__(self, arn: str) -> None:
        self.arn = arn

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Bedrock::ApplicationInferenceProfile"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "InferenceProfileName"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("InferenceProfileArn", "InferenceProfileId", "InferenceProfileIdentifier")

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> ApplicationInferenceProfileStandIn:
        profile_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
        return cls(f"arn:aws:bedrock:{region_name}:{account_id}:application-inference-profile/{profile_id}")

    @property
    def physical_resource_id(self) -> str:
        return f"{STAND_IN_PREFIX}{self.arn.rpartition('/')[2]}"

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self.arn.rpartition("/")[2] if attribute_name == "InferenceProfileId" else self.arn


STAND_INS = (ReplicationGroupStandIn.cloudformation_type(), ApplicationInferenceProfileStandIn.cloudformation_type())

if __name__ == "__main__":
    main()
