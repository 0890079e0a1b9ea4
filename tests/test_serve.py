"""The decision service: batched answers equal unbatched ones, metrics, 422s naming the field, book requests, the
online features, and the command line. A real uvicorn on 127.0.0.1 only (a free port); a tiny policy trained here."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

from hyperdapo.data.schema import BookSnapshots, MarketData, Trades
from hyperdapo.features.compute import compute_features
from hyperdapo.features.config import FeatureConfig
from hyperdapo.pipeline.trained import answer_prefix, load_trained
from hyperdapo.prompts.answer import format_answer
from hyperdapo.serve.__main__ import load_policies
from hyperdapo.serve.__main__ import main as serve_main
from hyperdapo.serve.app import create_app
from hyperdapo.serve.config import parse_serve_args
from hyperdapo.serve.market_state import MarketState
from tests.policy_helpers import decision_inputs, train_tiny_policy

pytestmark = pytest.mark.slow  # trains a policy or runs a pipeline: `make test-fast` leaves it out

N_CONCURRENT = 12


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_trained(train_tiny_policy(tmp_path_factory.mktemp("serve")))


@pytest.fixture(scope="module")
def server(policy):
    """The app under a real uvicorn on 127.0.0.1 (a free port), max 16 decisions per batch, 50 ms to gather."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app({"BTC": policy}, max_batch=16, max_wait_ms=50.0),
                                        host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def body(d, **extra) -> dict:
    return {"asset": "BTC", "side": d.side.name.lower(), "quantity": d.qty, "objective": d.objective.value,
            "horizon_s": d.horizon_s, "features": dict(d.features), "return_answer": True, **extra}


async def post_all(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60.0) as http:
        return await asyncio.gather(*(http.post(f"{url}/v1/decide", json=b) for b in bodies))


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples in Prometheus text (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def test_concurrent_requests_are_batched_and_answer_as_unbatched(policy, server):
    decisions = decision_inputs(N_CONCURRENT)
    unbatched = [policy.decide([d])[0] for d in decisions]
    assert [o.answer for o in policy.decide(decisions)] == [o.answer for o in unbatched]
    before = metric(httpx.get(f"{server}/metrics").text, "hyperdapo_batch_size_count")
    responses = asyncio.run(post_all(server, [body(d) for d in decisions]))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    got = [r.json() for r in responses]
    assert [g["answer"] for g in got] == [o.answer for o in unbatched]
    for g, o in zip(got, unbatched, strict=True):
        assert g["valid"] == o.valid and g["limit_px"] == o.limit_px and g["offset_bps"] == o.offset_bps
        assert g["reason"] == (None if o.valid else o.reason)
    batches = metric(httpx.get(f"{server}/metrics").text, "hyperdapo_batch_size_count") - before
    assert batches < N_CONCURRENT  # at least two requests shared a generate call


def test_metrics_expose_the_counters_after_requests(policy, server):
    text = httpx.get(f"{server}/metrics").text
    n_before = metric(text, 'hyperdapo_decide_requests_total{asset="BTC",code="200"}')
    invalid_before = metric(text, "hyperdapo_invalid_answers_total")
    responses = asyncio.run(post_all(server, [body(d) for d in decision_inputs(3)]))
    invalid = sum(not r.json()["valid"] for r in responses)
    httpx.post(f"{server}/v1/decide", json={"asset": "BTC"})  # a 422
    text = httpx.get(f"{server}/metrics").text
    assert metric(text, 'hyperdapo_decide_requests_total{asset="BTC",code="200"}') == n_before + 3
    assert metric(text, 'hyperdapo_decide_requests_total{asset="unknown",code="422"}') >= 1
    assert metric(text, "hyperdapo_decide_latency_seconds_count") >= n_before + 3
    assert metric(text, "hyperdapo_batch_size_sum") >= n_before + 3
    assert metric(text, 'hyperdapo_model_load_seconds{asset="BTC"}') == pytest.approx(policy.load_s)
    assert metric(text, "hyperdapo_invalid_answers_total") - invalid_before == invalid
    health = httpx.get(f"{server}/healthz").json()
    assert health["status"] == "ok" and health["policies"]["BTC"]["device"] == "cpu"


@pytest.mark.parametrize(("change", "field"), [
    ({"quantity": -1.0}, "quantity"),
    ({"side": "hold"}, "side"),
    ({"objective": "greedy"}, "objective"),
    ({"features": {"mid_usd": 42_000.5}}, "features"),
    ({"asset": "ETH"}, "asset"),
    ({"quantity": None}, "quantity"),
])
def test_bad_request_is_422_naming_the_field(server, change, field):
    b = {**body(decision_inputs(1)[0]), **change}
    r = httpx.post(f"{server}/v1/decide", json={k: v for k, v in b.items() if v is not None})
    assert r.status_code == 422
    assert any(field in err["loc"] for err in r.json()["detail"]), r.json()


def test_book_and_features_together_is_422(server):
    both = {**body(decision_inputs(1)[0]), "book": {"ts_ms": 1, "bids": [{"px": 1, "sz": 1}],
                                                   "asks": [{"px": 2, "sz": 1}]}}
    r = httpx.post(f"{server}/v1/decide", json=both)
    assert r.status_code == 422 and "exactly one of book" in r.text


def test_book_request_gives_the_order_and_stale_book_is_422(server):
    book = {"ts_ms": 1_704_110_399_915, "bids": [{"px": "42000.0", "sz": "1.5", "n": 2}, {"px": 41999, "sz": 2}],
            "asks": [{"px": 42001, "sz": 1}, {"px": 42002, "sz": 3}]}
    req = {"asset": "BTC", "side": "buy", "quantity": 0.1, "objective": "patient", "book": book,
           "trades": [{"ts_ms": book["ts_ms"] - 5, "px": 42000.5, "sz": 0.3, "side": "sell"}]}
    r = httpx.post(f"{server}/v1/decide", json=req)
    assert r.status_code == 200, r.text
    assert r.json()["mid_usd"] == 42000.5
    stale = {**req, "book": {**book, "ts_ms": book["ts_ms"] - 1000}}
    r = httpx.post(f"{server}/v1/decide", json=stale)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "book"]
    crossed = {**req, "book": {**book, "asks": [{"px": 41990, "sz": 1}]}}
    assert httpx.post(f"{server}/v1/decide", json=crossed).status_code == 422


def test_market_state_features_equal_the_training_features():
    """Fed snapshot by snapshot, the service's features (raw and causal z-scores) are the feature table's."""
    rng = np.random.default_rng(0)
    n, levels = 40, 5
    ts = 1_704_110_400_000_000 + np.arange(n, dtype=np.int64) * 1_000_000
    mid = 42_000 + np.cumsum(rng.normal(0, 2, n)).round()
    bid_px = (mid - 0.5)[:, None] - np.arange(levels)[None, :]
    ask_px = (mid + 0.5)[:, None] + np.arange(levels)[None, :]
    bid_sz, ask_sz = rng.uniform(0.1, 2, (n, levels)), rng.uniform(0.1, 2, (n, levels))
    t_ts = np.sort(rng.integers(ts[0], ts[-1], 120))
    t_px, t_amt, t_side = mid[np.searchsorted(ts, t_ts) - 1], rng.uniform(0.01, 1, 120), rng.choice([-1, 1], 120)
    cfg = FeatureConfig(ewm_min_rows=3)
    state = MarketState("BTC", cfg)
    for i in range(n):
        prev = ts[i - 1] if i else 0
        sel = (t_ts > prev) & (t_ts <= ts[i])
        row = state.update(int(ts[i]), list(zip(bid_px[i], bid_sz[i], strict=True)),
                           list(zip(ask_px[i], ask_sz[i], strict=True)),
                           list(zip(t_ts[sel].tolist(), t_px[sel], t_amt[sel], t_side[sel].tolist(), strict=True)))
    market = MarketData("BTC", BookSnapshots(ts, ts, bid_px, bid_sz, ask_px, ask_sz),
                        Trades(t_ts, t_ts, t_px, t_amt, t_side.astype(np.int8)))
    expected = compute_features(market, ts, cfg).iloc[-1]
    for key, value in row.items():
        assert value == pytest.approx(float(expected[key]), nan_ok=True, rel=1e-9), key
    assert np.isfinite(row["trade_flow_5m_z"]) and np.isfinite(row["imbalance_top5_z"])


def test_cli_bad_value_or_policy_exits_2(tmp_path, capsys):
    assert serve_main(["max_batch=0"]) == 2
    assert "max_batch=0" in capsys.readouterr().err
    assert serve_main(["port=abc"]) == 2
    assert "port" in capsys.readouterr().err
    assert serve_main([f"policy={tmp_path}"]) == 2
    assert "config.yaml" in capsys.readouterr().err




def post_raw(url: str, text: str) -> httpx.Response:
    """POST ``text`` as a JSON body as is (Python's json writes NaN and Infinity, which httpx refuses to send)."""
    return httpx.post(f"{url}/v1/decide", content=text.encode(), headers={"content-type": "application/json"})


def decide_counts(url: str) -> dict[str, float]:
    """/metrics' decide requests by status code (all assets)."""
    text = httpx.get(f"{url}/metrics").text
    return {code: sum(metric(text, f'hyperdapo_decide_requests_total{{asset="{a}",code="{code}"}}')
                      for a in ("unknown", "BTC")) for code in ("200", "413", "422", "500")}


@pytest.mark.parametrize(("token", "field"), [("NaN", "quantity"), ("1e999", "quantity"), ("-Infinity", "horizon_s"),
                                              ("NaN", "features")])
def test_non_finite_number_is_a_clean_422_counted_as_422(server, token, field):
    b = body(decision_inputs(1)[0])
    if field == "features":
        b["features"]["volatility_5m_bps"] = "<x>"
    else:
        b[field] = "<x>"
    before = decide_counts(server)
    r = post_raw(server, json.dumps(b).replace('"<x>"', token))
    assert r.status_code == 422, r.text
    assert any(field in err["loc"] for err in r.json()["detail"]), r.json()
    assert "NaN" not in r.text and "Infinity" not in r.text and "input" not in r.json()["detail"][0]
    after = decide_counts(server)
    assert (after["422"], after["500"]) == (before["422"] + 1, before["500"])


@pytest.mark.parametrize(("prices", "words"), [
    ({"best_bid_usd": 42_005.0, "best_ask_usd": 41_990.0, "mid_usd": 41_997.5}, "crossed"),
    ({"best_bid_usd": 42_000.0, "best_ask_usd": 42_001.0, "mid_usd": 100.0}, "mid_usd"),
])
def test_inconsistent_features_book_is_422_naming_features(server, prices, words):
    b = body(decision_inputs(1)[0])
    b["features"].update(prices)
    r = httpx.post(f"{server}/v1/decide", json=b)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == "features" and words in r.json()["detail"][0]["msg"]


def test_absurd_quantity_is_422_naming_the_notional_cap(server):
    r = httpx.post(f"{server}/v1/decide", json=body(decision_inputs(1)[0], quantity=1e300))
    assert r.status_code == 422, r.text
    err = r.json()["detail"][0]
    assert err["loc"] == ["body", "quantity"] and "max_notional_usd" in err["msg"]


def test_oversized_body_is_413_unparsed_and_counted(server):
    before = decide_counts(server)
    big = body(decision_inputs(1)[0], features={f"f{k}": 1.0 for k in range(150_000)})  # ~2 MB
    r = httpx.post(f"{server}/v1/decide", json=big)
    assert r.status_code == 413 and len(r.content) < 1000
    after = decide_counts(server)
    assert (after["413"], after["422"]) == (before["413"] + 1, before["422"])


def test_cli_help_and_hydra_overrides_say_it_is_not_a_hydra_app(capsys):
    assert serve_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "not a Hydra app" in out and "max_body_bytes" in out
    assert serve_main(["hydra.run.dir=/tmp/x"]) == 2
    err = capsys.readouterr().err
    assert "hydra.run.dir" in err and "not a Hydra app" in err


def test_truncated_weights_fail_start_up_naming_the_file(policy, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(policy.path, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert serve_main([f"policy={broken}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(weights) in err and "Traceback" not in err


def test_a_policy_of_another_venue_is_refused_naming_each_field_unless_allowed(policy, capsys):
    """The tiny policy was trained with venue=hyperliquid (BTC: 5 significant figures, lot 0.00001); served with
    venue=binance_futures (tick 0.1 USD, lot 0.001 BTC) it is refused by evaluate.py's transfer check, naming each
    field, before any model loads; with allow_transfer=true it serves orders on the binance_futures tick."""
    assert serve_main([f"policy={policy.path}", "venue=binance_futures"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"policy={policy.path} was trained on synthetic hyperliquid" in err
    assert "venue hyperliquid vs binance_futures" in err and "lot 0.00001 BTC vs 0.001 BTC" in err
    assert "tick 5 significant figures, decimals <= 1, USD vs 0.1 USD" in err and "allow_transfer=true" in err
    assert "data source" not in err and "fills" not in err  # the service has no data: only the venue is compared
    same = load_policies(parse_serve_args([f"policy={policy.path}", "venue=hyperliquid"]), "cpu")
    assert same["BTC"].cfg.venue == policy.cfg.venue  # the policy's own venue is no transfer
    served = load_policies(parse_serve_args([f"policy={policy.path}", "venue=binance_futures", "allow_transfer=true"]),
                           "cpu")["BTC"]
    assert served.cfg.venue.name == "binance_futures" and served.cfg.venue.tick_usd["BTC"] == 0.1
    d = decision_inputs(1)[0]  # mid 42,000.5 USD: Hyperliquid's tick there is 1 USD
    completion = format_answer(d.side, -3.3)[len(answer_prefix(policy.cfg, d.side)):]
    own_px, served_px = policy.parse(d, completion).limit_px, served.parse(d, completion).limit_px
    assert own_px == round(own_px) and served_px * 10 == pytest.approx(round(served_px * 10)) and served_px != own_px
