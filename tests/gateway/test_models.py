"""Models through the running gateway: each team's own application inference profile, the shared one as a
flagged fallback, refusals in Bedrock's shape before anything is forwarded, and the control-plane probes
Claude Code makes at start, read by boto3's own `bedrock` client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from botocore.exceptions import ClientError

from config import load_config
from config.render import gateway_settings
from gateway.settings import TEAM_PROFILES_VARIABLE, GatewaySettings, team_profiles_variable
from local import fake_vendor, harness
from local.harness import MODEL
from tests.gateway.conftest import GatewayFactory, RunningGateway, read_jsonl

pytestmark = pytest.mark.usefixtures("reset_vendor")

ACCOUNT, REGION = "123456789012", "eu-west-1"  # dev.yaml's
PROFILE_PREFIX = f"arn:aws:bedrock:{REGION}:{ACCOUNT}:application-inference-profile/"
IDS = harness.team_profile_ids("dev")
SYSTEM_PROFILES = [
    "eu.anthropic.claude-opus-5-5",
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0",
]


def team_arn(team: str, model: str = MODEL) -> str:
    return PROFILE_PREFIX + IDS[(team, model)]


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    # As on an instance: the teams' profile ids arrive in the environment, the rest from the rendered settings.
    # "contractors" stands for a team added to the config after the last deploy: it has no profile yet.
    teams = (*load_config("dev").teams, "contractors")
    return make_stack(teams=teams, env={TEAM_PROFILES_VARIABLE: team_profiles_variable(IDS)})


def rendered() -> GatewaySettings:
    return gateway_settings(load_config("dev"))


def test_the_team_profile_ids_from_the_environment_become_arns() -> None:
    settings = rendered().with_environment({TEAM_PROFILES_VARIABLE: team_profiles_variable(IDS)})
    assert settings.vendor.team_profiles["payments"][MODEL] == team_arn("payments")
    assert len(settings.vendor.team_profiles) == 4 and all(len(p) == 3 for p in settings.vendor.team_profiles.values())


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("payments=abc", "'payments=abc' is not team/model-id=profile-id"),
        (f"payments/{MODEL}=", "is not team/model-id=profile-id"),
        (f"payments/{MODEL}=ab/cd", "is not team/model-id=profile-id"),
        ("payments/anthropic.claude-opus-4-1=abc123def456", "'anthropic.claude-opus-4-1' is not a configured model"),
    ],
)
def test_a_malformed_team_profile_variable_stops_the_gateway_at_start(value: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        rendered().with_environment({TEAM_PROFILES_VARIABLE: value})


def requests_seen(stack: RunningGateway) -> int:
    return int(stack.vendor_last()["requests"])


def test_a_team_request_invokes_its_own_profile_signed_for_its_arn(stack: RunningGateway) -> None:
    response = stack.call(model=MODEL)  # the default token is team payments'
    assert response.status_code == 200, response.text
    last = stack.vendor_last()["last"]
    # The fake vendor recomputed the signature over the path with the profile's ARN: it matched.
    assert last["model"] == team_arn("payments")
    assert last["path"] == f"/model/{team_arn('payments')}/invoke"
    record = stack.audit(response.headers["x-request-id"])
    assert (record["model"], record["invoked"], record["profile_fallback"]) == (MODEL, team_arn("payments"), False)
    metrics = stack.metrics(response.headers["x-request-id"])
    assert (metrics["Model"], metrics["InvokedModel"], metrics["ProfileFallback"]) == (MODEL, team_arn("payments"), 0)


def test_a_team_without_a_profile_uses_the_shared_one_flagged(stack: RunningGateway) -> None:
    response = stack.call(token=stack.token(team="contractors"))
    assert response.status_code == 200, response.text
    assert stack.vendor_last()["last"]["model"] == MODEL
    record = stack.audit(response.headers["x-request-id"])
    assert (record["invoked"], record["profile_fallback"]) == (MODEL, True)
    assert stack.metrics(response.headers["x-request-id"])["ProfileFallback"] == 1


@pytest.mark.parametrize(
    "name",
    [
        f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{MODEL}",  # the system profile, by ARN
        team_arn("payments"),  # the team's own profile, by ARN
        "eu.anthropic.claude-opus-5-5",  # what Claude Code picks by default in an EU Region
    ],
)
def test_the_names_bedrock_accepts_for_a_served_model_pass(stack: RunningGateway, name: str) -> None:
    response = stack.call(model=quote(name, safe=":"))
    assert response.status_code == 200, response.text
    assert stack.vendor_last()["last"]["model"].startswith(PROFILE_PREFIX)  # always the team's profile


@pytest.mark.parametrize(
    "name",
    [
        "anthropic.claude-opus-4-1-20250805-v1:0",  # not configured
        "anthropic.claude-sonnet-4-5-20250929-v1:0",  # configured only through its profile
        f"arn:aws:bedrock:{REGION}:210987654321:inference-profile/{MODEL}",  # another account
        f"arn:aws:bedrock:eu-central-1:{ACCOUNT}:inference-profile/{MODEL}",  # another Region
        team_arn("platform"),  # another team's profile: its bill, not ours
        "eu.anthropic.claude-opus-5-5/../../inference-profiles",  # not a model at all
    ],
)
def test_anything_else_gets_bedrocks_validation_error_and_is_never_forwarded(stack: RunningGateway, name: str) -> None:
    before = requests_seen(stack)
    response = stack.call(model=quote(name, safe=":"))
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "ValidationException"
    message = response.json()["message"]
    assert "is not served by this gateway; use one of: " + ", ".join(SYSTEM_PROFILES) in message
    assert requests_seen(stack) == before
    record = stack.audit(response.headers["x-request-id"])
    assert (record["status"], record["outcome"], record["invoked"]) == (400, "model_not_allowed", None)


# -- the control-plane probes --------------------------------------------------------------------


@pytest.fixture
def bedrock(stack: RunningGateway) -> Iterator[Any]:
    client = stack.boto3_client("bedrock")
    yield client
    client.close()


def test_the_system_profiles_listed_are_the_ones_served(bedrock: Any) -> None:
    listed = bedrock.list_inference_profiles(typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    assert [p["inferenceProfileId"] for p in listed] == SYSTEM_PROFILES
    opus = listed[0]
    assert opus["inferenceProfileArn"] == f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{SYSTEM_PROFILES[0]}"
    assert (opus["status"], opus["type"]) == ("ACTIVE", "SYSTEM_DEFINED")
    regions = [m["modelArn"].split(":")[3] for m in opus["models"]]
    assert regions == ["eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-3"]
    assert bedrock.list_inference_profiles()["inferenceProfileSummaries"] == listed  # Bedrock's default type


def test_a_team_lists_and_reads_only_its_own_application_profiles(stack: RunningGateway, bedrock: Any) -> None:
    listed = bedrock.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"]
    assert sorted(p["inferenceProfileArn"] for p in listed) == sorted(team_arn("payments", m) for m in SYSTEM_PROFILES)
    # Claude Code reads a profile's backing model from models[0] when ANTHROPIC_MODEL is a profile's ARN.
    profile = bedrock.get_inference_profile(inferenceProfileIdentifier=team_arn("payments"))
    assert (profile["type"], profile["inferenceProfileId"]) == ("APPLICATION", IDS[("payments", MODEL)])
    assert profile["models"][0]["modelArn"].endswith("::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0")
    with pytest.raises(ClientError) as refused:
        bedrock.get_inference_profile(inferenceProfileIdentifier=team_arn("platform"))
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_listing_pages_and_refuses_what_bedrock_refuses(stack: RunningGateway, bedrock: Any) -> None:
    first = bedrock.list_inference_profiles(maxResults=2)
    assert len(first["inferenceProfileSummaries"]) == 2 and first["nextToken"]
    rest = bedrock.list_inference_profiles(maxResults=2, nextToken=first["nextToken"])
    assert [p["inferenceProfileId"] for p in rest["inferenceProfileSummaries"]] == SYSTEM_PROFILES[2:]
    assert "nextToken" not in rest
    response = httpx.get(
        stack.gateway.url + "/inference-profiles?type=EVERYTHING", headers={"authorization": f"Bearer {stack.token()}"}
    )
    assert response.status_code == 400 and response.headers["x-amzn-errortype"] == "ValidationException"


def test_a_probe_without_a_token_is_counted_not_audited(stack: RunningGateway) -> None:
    client = stack.boto3_client("bedrock", None)
    with pytest.raises(ClientError) as refused:
        client.list_inference_profiles(typeEquals="SYSTEM_DEFINED")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    probe_id = refused.value.response["ResponseMetadata"]["HTTPHeaders"]["x-request-id"]
    assert stack.metrics(probe_id)["UnauthenticatedProbes"] == 1
    # The audit file is written in order: once a later request's record is there, the probe's would be too.
    later = stack.call()
    stack.audit(later.headers["x-request-id"])
    assert probe_id not in {record["request_id"] for record in read_jsonl(stack.settings.audit.path)}
    # Any other path without a token is still an audited rejection.
    response = httpx.get(stack.gateway.url + "/inference-profile-typo")
    assert response.status_code == 401
    assert stack.audit(response.headers["x-request-id"])["outcome"] == "unauthorized"


@pytest.mark.parametrize(
    ("model", "refused"),
    [
        ("anthropic.claude-opus-5-5", "on-demand throughput isn't supported"),  # profile-only
        ("us.anthropic.claude-opus-5-5", "invalid"),  # not callable from eu-west-1
        ("no-such-model", "invalid"),
        (team_arn("payments").replace(REGION, "us-east-1"), "not in this Region"),
        (f"arn:aws:bedrock:{REGION}::inference-profile/{MODEL}", "invalid"),  # a profile ARN names its account
        (team_arn("payments"), None),
        (MODEL, None),
        (f"arn:aws:bedrock:{REGION}:{ACCOUNT}:inference-profile/{MODEL}", None),
    ],
)
def test_the_fake_vendor_takes_models_as_bedrock_does(model: str, refused: str | None) -> None:
    """The stand-in must be as strict as Bedrock, or the tests above would prove nothing."""
    error = fake_vendor.model_error(model)
    assert error is None if refused is None else refused in (error or "")
