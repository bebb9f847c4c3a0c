"""scripts/drill.py: its judgement of the alarms, and one incident run for real (a gateway killed behind the local
round robin), shortened. Running processes: two gateways, Redis, the fake vendor."""

from __future__ import annotations

import pytest

from config.slo import BURN_RATE_ALERTS
from scripts import drill
from scripts.drill import Answer, Outcome

ALERTS = {alert.name: alert for alert in BURN_RATE_ALERTS}


def test_minutes_to_page_follow_the_burn_rate_arithmetic() -> None:
    # A total outage fills FastBurn's hour to 7.2 % in 4.32 minutes; 2 % errors never reach it.
    assert drill.minutes_to_page(ALERTS["FastBurn"], 1.0) == 5
    assert drill.minutes_to_page(ALERTS["FastBurn"], 0.02) is None
    assert drill.minutes_to_page(ALERTS["SlowBurn"], 0.0625) == 173  # 3 % of 6 h at 6.25 %: 172.8 minutes
    assert drill.minutes_to_page(ALERTS["BudgetBurn"], 0.0) is None


def outcome(statuses: list[int], seconds: float = 0.05, **counts: float) -> Outcome:
    answers = [Answer(at=i * 0.5, status=status, seconds=seconds) for i, status in enumerate(statuses)]
    fivexx = sum(status >= 500 for status in statuses)
    return Outcome(
        "test",
        answers=answers,
        requests=len(statuses),
        target_5xx=fivexx,
        **counts,  # type: ignore[arg-type]
    )


def test_a_quiet_run_moves_no_alarm() -> None:
    assert drill.alarm_conditions(outcome([200] * 100)) == []


def test_a_short_outage_is_named_but_not_called_a_page() -> None:
    said = drill.alarm_conditions(outcome([200] * 50 + [503] * 50, unhealthy_seconds=30.0))
    text = "\n".join(said)
    assert "ErrorRate" in text and "at the incident's 50.0 % for 10 min, met" in text
    assert "UnhealthyHosts (3 min running): not met: it lasted 30 s of the 180 s" in text
    fast = next(line for line in said if line.startswith("SLO FastBurn"))
    assert fast.startswith("SLO FastBurn (page, 7.2 % over 60 and 5 min): not met")
    assert fast.endswith("fires after 9 min")  # 7.2 % of an hour at 50 %: 8.64 minutes


def test_slow_answers_and_an_open_breaker() -> None:
    slow = outcome([504] * 10, seconds=12.0)
    slow.metrics = [{"BreakerOpen": 1}, {"BreakerOpen": 0}]
    text = "\n".join(drill.alarm_conditions(slow))
    assert "SlowAnswers (p99 above 8 s for 5 min): 10 answers slower; not met" in text
    assert "BreakerOpen (any minute): met, 1 requests answered while a breaker was open" in text


@pytest.mark.slow
def test_a_gateway_killed_behind_the_round_robin() -> None:
    with drill.fleet() as running:
        result = drill.gateway_killed(running, scale=0.5)  # killed at 5 s, back at 15 s, 22 s in all
    statuses = [a.status for a in result.answers]
    # The balancer sends to the dead one until three checks fail: a few 502s, then only the live one answers.
    assert 0 < statuses.count(502) < len(statuses) // 4, statuses
    assert set(statuses) == {200, 502}
    assert statuses[-20:] == [200] * 20  # the replacement serves again
    assert result.elb_5xx == statuses.count(502) and result.target_5xx == 0
    assert result.unhealthy_marks == 1 and result.min_healthy == 1
    report = drill.report(result)
    assert "UnhealthyHosts (3 min running): not met" in report and "load balancer:" in report
