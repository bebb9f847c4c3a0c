"""The availability canary's identity: its secret names only it, its requests are audited as the canary's and
billed to no team, and nobody else can reach its identity. Running processes; the re-read on its own."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from config import load_config
from config.render import gateway_settings
from gateway.auth import CANARY, CanaryToken
from gateway.settings import CANARY_TOKEN_VARIABLE
from local.harness import RedisServer
from tests.gateway.conftest import GatewayFactory, RunningGateway

pytestmark = pytest.mark.usefixtures("reset_vendor")
CANARY_SECRET = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def stack(make_stack: GatewayFactory) -> RunningGateway:
    return make_stack(env={"AIGW_TEST_CANARY": CANARY_SECRET}, auth__canary_token_env="AIGW_TEST_CANARY")


def test_the_canarys_secret_is_the_canary_audited_as_such(stack: RunningGateway) -> None:
    response = stack.call(token=CANARY_SECRET)
    assert response.status_code == 200, response.text
    record = stack.audit(response.headers["x-request-id"])
    assert (record["user"], record["team"], record["canary"]) == ("aigw-canary", "canary", True)
    person = stack.call()
    assert stack.audit(person.headers["x-request-id"])["canary"] is False
    # Billed to no team: its metrics line is the canary's own, never one of the configured teams'.
    assert stack.metrics(response.headers["x-request-id"])["Team"] == "canary"


@pytest.mark.parametrize(
    "token",
    [CANARY_SECRET[:-1], CANARY_SECRET + "x", CANARY_SECRET.upper(), f"{CANARY_SECRET}.{CANARY_SECRET}.sig"],
    ids=["shorter", "longer", "other-case", "jwt-shaped"],
)
def test_anything_else_is_not_the_canary(stack: RunningGateway, token: str) -> None:
    response = stack.call(token=token)
    assert response.status_code == 401, response.text
    assert stack.audit(response.headers["x-request-id"])["canary"] is False


def test_a_token_claiming_the_canarys_team_is_refused(stack: RunningGateway) -> None:
    response = stack.call(token=stack.keys.token("k1", team="canary"))
    assert response.status_code == 403
    assert "'canary' is not one of this gateway's teams" in response.json()["message"]


def test_without_a_canary_configured_its_secret_is_nothing(make_stack: GatewayFactory) -> None:
    plain = make_stack(env={"AIGW_TEST_CANARY": CANARY_SECRET})  # the variable set, but not named in settings
    assert plain.call(token=CANARY_SECRET).status_code == 401


def test_no_budget_is_held_for_the_canary(make_stack: GatewayFactory, fresh_redis: RedisServer) -> None:
    capped = make_stack(
        env={"AIGW_TEST_CANARY": CANARY_SECRET}, auth__canary_token_env="AIGW_TEST_CANARY", limits__enabled=True,
        team_budgets_usd={"payments": 1.0, "canary": 0.000001}, **fresh_redis.settings(),
    )  # fmt: skip
    response = capped.call(token=CANARY_SECRET)
    assert response.status_code == 200, response.text
    record = capped.audit(response.headers["x-request-id"])
    assert record["budget"] is None and record["limits"]["mode"] == "shared"


def test_a_replaced_secret_is_read_again_at_most_once_a_minute() -> None:
    values, now = iter(["first", "second", "third"]), [0.0]
    token = CanaryToken(lambda: next(values), clock=lambda: now[0])
    token.load()

    def matches(value: str) -> bool:
        return asyncio.run(token.matches(value))

    assert matches("first")
    now[0] = 30.0
    assert not matches("second")  # replaced, but read less than a minute ago
    now[0] = 61.0
    assert matches("second")  # read again: "second" is now the secret...
    assert not matches("first")  # ...and the old one no longer is
    assert not matches("a.jwt.token")  # a JWT never makes it read the secret again
    assert CANARY.canary and CanaryToken(None) is not None


def test_on_an_instance_the_secret_arrives_by_its_arn_in_the_environment() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:aigw-dev-canary-AbCdEf"
    settings = gateway_settings(load_config("dev"))
    assert settings.auth.canary_token_secret_id is None
    assert settings.with_environment({CANARY_TOKEN_VARIABLE: arn}).auth.canary_token_secret_id == arn
