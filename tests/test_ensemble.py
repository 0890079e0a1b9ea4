"""The asset ensemble: the median offset of its members' valid answers, per decision."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, fields

import pytest
from fastapi.testclient import TestClient

from hyperdapo.data.schema import Side
from hyperdapo.pipeline.ensemble import EnsemblePolicy, load_any
from hyperdapo.pipeline.trained import DecisionInput, Order, TrainedPolicy
from hyperdapo.serve.app import create_app
from tests.policy_helpers import decision_inputs, train_tiny_policy

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

TICK_BPS = 0.3  # a BTC tick (1 USD at 42 kUSD, ~0.24 bps) plus the answer's 0.1-bps rounding


@dataclass
class ScriptedPolicy(TrainedPolicy):
    """A loaded policy whose answers are given: ``offsets[i]`` bps for the i-th decision of a call (the tiny
    policies answer nothing valid yet, so their answers cannot differ)."""

    offsets: tuple[float, ...] = ()

    def decide(self, decisions: Sequence[DecisionInput]) -> list[Order]:
        return [self.parse(d, f" {o:.1f} bps") for d, o in zip(decisions, self.offsets, strict=True)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TrainedPolicy:
    return load_any(str(train_tiny_policy(tmp_path_factory.mktemp("tiny"))), "")


def scripted(policy: TrainedPolicy, offsets: Sequence[float]) -> ScriptedPolicy:
    return ScriptedPolicy(**{f.name: getattr(policy, f.name) for f in fields(TrainedPolicy)}, offsets=tuple(offsets))


def test_ensemble_answers_the_median_of_its_members_valid_answers(tiny):
    members = [scripted(tiny, [-5, -10, 0, -20, 3, -1, -8, -2]), scripted(tiny, [-9, -10, 40, -2.5, -30, 7, -8.3, -4]),
               scripted(tiny, [-1, -12, -3, -6, -0.5, 2, -50, -2]), tiny]
    decisions = decision_inputs(8)
    own = [m.decide(decisions) for m in members]  # each member's own answers, computed separately
    assert not any(o.valid for o in own[-1])  # the tiny policy's invalid answers are left out of the median
    got = EnsemblePolicy(members).decide(decisions)
    for d, order, *answers in zip(decisions, got, *own, strict=True):
        median = statistics.median(o.offset_bps for o in answers if o.valid)
        assert order.valid and order.offset_bps == pytest.approx(median, abs=TICK_BPS)
        assert order.answer.startswith(f"{d.side.name} LIMIT")
    assert len({round(o.offset_bps) for o in got}) > 4  # the cases differ


def test_median_resists_one_outlier_and_without_valid_answers_is_invalid(tiny):
    ens = EnsemblePolicy([tiny, tiny, tiny])
    d = decision_inputs(2)[1]
    assert d.side == Side.BUY
    mid = d.features["mid_usd"]
    orders = [Order(True, "none", None, off, mid, "") for off in (-5.0, -7.0, 150.0)]
    got = ens.combine(d, orders)  # median of -5, -7, 150: -5 (a mean would be +46)
    assert got.valid and got.offset_bps == pytest.approx(-5.0, abs=TICK_BPS) and got.limit_px < mid
    invalid = Order(False, "unparsable", None, None, mid, "BUY LIMIT ?")
    assert ens.combine(d, [invalid] * 3) == invalid
    with pytest.raises(ValueError, match="at least two members"):
        EnsemblePolicy([tiny])
    with pytest.raises(ValueError, match="members="):
        load_any("x", "a,b")


def test_the_service_serves_an_ensemble(tiny):
    ens = EnsemblePolicy([scripted(tiny, [-5]), scripted(tiny, [-9]), scripted(tiny, [30])])
    d = decision_inputs(1)[0]
    body = {"asset": "BTC", "side": d.side.name.lower(), "quantity": d.qty, "objective": d.objective.value,
            "features": dict(d.features), "return_answer": True}
    with TestClient(create_app({"BTC": ens})) as client:  # in-process ASGI: no socket
        got = client.post("/v1/decide", json=body).json()
        assert client.get("/healthz").status_code == 200
    assert got["valid"] and got["offset_bps"] == pytest.approx(-5.0, abs=TICK_BPS)
    assert got["policy"].startswith("ensemble(") and got["answer"].startswith(f"{d.side.name} LIMIT -5.")
