"""The decision service: FastAPI app with one policy per asset.

- ``POST /v1/decide``: a :class:`~hyperdapo.serve.schemas.DecideRequest` -> a
  :class:`~hyperdapo.serve.schemas.DecideResponse` (the order: limit price USD, offset bps, valid flag, reason).
  A bad body is a 422 naming the field (pydantic; the input is not echoed: it may be large or, as NaN, not
  encodable in JSON); an asset without a loaded policy, a book older than the newest one of its asset, or an order
  above ``max_notional_usd`` (quantity x mid) is a 422 naming ``asset`` / ``book`` / ``quantity``. A body above
  ``max_body_bytes`` is a 413, refused before it is read (FastAPI's ``max_body_size``).
- ``GET /metrics``: Prometheus text (decide responses by asset and status code, whatever produced them, see
  :class:`CountResponses`; decide latency in s, batch sizes, invalid answers by reason, model load time in s).
- ``GET /healthz``: the loaded policies and their device.

Concurrent requests of one asset are micro-batched (:class:`~hyperdapo.serve.batcher.MicroBatcher`) into one
greedy generate call (:meth:`hyperdapo.pipeline.trained.TrainedPolicy.decide`) run in a thread.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hyperdapo.data.schema import Side
from hyperdapo.pipeline.trained import DecisionInput, TrainedPolicy
from hyperdapo.serve.batcher import MicroBatcher
from hyperdapo.serve.config import ServeConfig
from hyperdapo.serve.market_state import MarketState, StaleBookError
from hyperdapo.serve.schemas import DecideRequest, DecideResponse

LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DECIDE_PATH = "/v1/decide"
UNKNOWN_ASSET = "unknown"  # the asset label of a request without a loaded policy's asset (a bad body, a 413)


class ServeMetrics:
    """The service's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("hyperdapo_decide_requests", "decide requests by asset and HTTP status code",
                                ["asset", "code"], registry=r)
        self.latency = Histogram("hyperdapo_decide_latency_seconds", "decide request latency, s (queue + batch)",
                                 ["asset"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.batch_size = Histogram("hyperdapo_batch_size", "decisions per generate call", ["asset"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.invalid = Counter("hyperdapo_invalid_answers", "answers that did not parse into a valid order",
                               ["asset", "reason"], registry=r)
        self.load_s = Gauge("hyperdapo_model_load_seconds", "time to load the policy, s", ["asset"], registry=r)


class CountResponses:
    """ASGI middleware counting every ``POST /v1/decide`` response once by asset and HTTP status code, whatever
    produced it: the endpoint, a 422 of validation, the 413 of the body limit, or an exception (500). The asset is
    the one the endpoint stores in ``scope["state"]`` once it knows a policy for it, else :data:`UNKNOWN_ASSET`
    (so the label takes no value a client invents)."""

    def __init__(self, app: ASGIApp, requests: Counter):
        self.app, self.requests = app, requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != DECIDE_PATH:
            await self.app(scope, receive, send)
            return
        status = None

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception as exc:  # not answered yet: the server's 500, or the exception's own code
            status = status or getattr(exc, "status_code", 500)
            raise
        finally:
            asset = scope.get("state", {}).get("asset", UNKNOWN_ASSET)
            self.requests.labels(asset, str(status or 500)).inc()


def _unprocessable(field: str, msg: str) -> JSONResponse:
    """A 422 in FastAPI's own shape, naming the body field."""
    return JSONResponse(status_code=422, content={"detail": [{"loc": ["body", field], "msg": msg,
                                                              "type": "value_error"}]})


def create_app(policies: dict[str, TrainedPolicy], max_batch: int = 32, max_wait_ms: float = 2.0,
               max_body_bytes: int = ServeConfig.max_body_bytes,
               max_notional_usd: float = ServeConfig.max_notional_usd) -> FastAPI:
    """The app serving ``policies`` (asset -> loaded policy); a request body above ``max_body_bytes`` is a 413, an
    order above ``max_notional_usd`` (quantity coins x mid USD) a 422."""
    metrics = ServeMetrics()
    states = {asset: MarketState(asset, p.cfg.features) for asset, p in policies.items()}
    batchers = {asset: MicroBatcher(p.decide, max_batch, max_wait_ms, metrics.batch_size.labels(asset).observe)
                for asset, p in policies.items()}
    for asset, p in policies.items():
        metrics.load_s.labels(asset).set(p.load_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        for b in batchers.values():
            b.start()
        yield
        for b in batchers.values():
            await b.stop()

    app = FastAPI(title="HyperDAPO decision service", lifespan=lifespan, max_body_size=max_body_bytes)
    app.add_middleware(CountResponses, requests=metrics.requests)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 without the ``input`` and ``ctx`` of each error (a NaN there cannot be written as JSON)."""
        return JSONResponse(status_code=422, content={"detail": [{k: e[k] for k in ("loc", "msg", "type")}
                                                                 for e in exc.errors()]})

    @app.post(DECIDE_PATH, response_model=DecideResponse)
    async def decide(req: DecideRequest, request: Request):
        t0 = time.perf_counter()
        policy = policies.get(req.asset)
        if policy is None:
            return _unprocessable("asset", f"no policy loaded for asset {req.asset!r}; loaded: {sorted(policies)}")
        request.state.asset = req.asset
        mid_usd = req.features["mid_usd"] if req.book is None else (req.book.bids[0].px + req.book.asks[0].px) / 2
        if req.quantity * mid_usd > max_notional_usd:
            return _unprocessable("quantity", f"quantity {req.quantity:g} x mid {mid_usd:g} USD is above "
                                  f"max_notional_usd={max_notional_usd:g}: check the unit (coins)")
        if req.book is not None:
            trades = None if req.trades is None else [(t.ts_ms * 1000, t.px, t.sz, 1 if t.side == "buy" else -1)
                                                      for t in req.trades]
            try:
                features = states[req.asset].update(req.book.ts_ms * 1000, [(lv.px, lv.sz) for lv in req.book.bids],
                                                    [(lv.px, lv.sz) for lv in req.book.asks], trades)
            except StaleBookError as exc:
                return _unprocessable("book", str(exc))
        else:
            features = req.features
        side = Side.BUY if req.side == "buy" else Side.SELL
        horizon_s = req.horizon_s or policy.cfg.decisions.horizon_s
        order = await batchers[req.asset].submit(DecisionInput(features, side, req.quantity, req.objective, horizon_s))
        if not order.valid:
            metrics.invalid.labels(req.asset, order.reason).inc()
        metrics.latency.labels(req.asset).observe(time.perf_counter() - t0)
        return DecideResponse(asset=req.asset, side=req.side, quantity=req.quantity, objective=req.objective,
                              valid=order.valid, reason=None if order.valid else order.reason,
                              limit_px=order.limit_px, offset_bps=order.offset_bps, mid_usd=order.mid_usd,
                              answer=order.answer if req.return_answer else None, policy=str(policy.path))

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "policies": {asset: {"path": str(p.path), "device": str(p.model.device),
                                                     "algo": p.cfg.algo.name.value} for asset, p in policies.items()}}

    return app
