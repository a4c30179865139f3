"""The ops surface: liveness, readiness and Prometheus metrics.

``/health`` answers 200 whenever the process can answer at all (liveness:
systemd or a load balancer restart on failure), and shows every actor's
state, restart count and last error so that an operator sees *why*
something is wrong.  ``/ready`` answers 503 while any *required* actor is
not running or reports itself degraded (readiness: nginx or a deploy
script waits for it); the rule is :func:`zmartd.context.readiness`.
``/metrics`` is Prometheus text, content-negotiated.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.exposition import choose_encoder
from quart import Blueprint, Response, current_app, jsonify, request

from zmartd.context import ActorContext, readiness

__all__ = ["blueprint", "metrics"]

blueprint = Blueprint("ops", __name__)


def _ctx() -> ActorContext:
    ctx: ActorContext = current_app.extensions["zmartd"]
    return ctx


def _readiness(ctx: ActorContext) -> tuple[bool, list[dict[str, Any]]]:
    verdict = readiness(ctx.statuses(), ctx.health)
    return verdict.ready, verdict.actors


@blueprint.get("/health")
async def health() -> Any:
    ctx = _ctx()
    ready, actors = _readiness(ctx)
    return jsonify(
        {
            "status": "ok",
            "ready": ready,
            **ctx.facts(),
            "actors": actors,
            "roles": dict(sorted(ctx.health.roles.items())),
        }
    )


@blueprint.get("/ready")
async def ready() -> Any:
    ctx = _ctx()
    is_ready, actors = _readiness(ctx)
    ctx.metrics.ready.set(1 if is_ready else 0)
    body = {
        "status": "ready" if is_ready else "not ready",
        "actors": {a["name"]: a["state"] if a["degraded"] is None else "degraded" for a in actors},
        "problems": [
            {
                "actor": a["name"],
                "state": a["state"],
                "degraded": a["degraded"],
                "last_error": a["last_error"],
            }
            # an optional actor's degraded reason (e.g. "an approval waits for a human")
            # is listed too, but does not make the instance unready
            for a in actors
            if not a["ok"] and (a["required"] or a["degraded"] is not None)
        ],
        # leader-only actors: which lead on this instance and which stand by
        "roles": dict(sorted(ctx.health.roles.items())),
    }
    response = jsonify(body)
    response.status_code = 200 if is_ready else 503
    if not is_ready:
        response.headers["Retry-After"] = "1"
    return response


async def metrics() -> Response:
    """Registered at ``[metrics] path`` by the app factory, only when enabled."""
    ctx = _ctx()
    ready, _ = _readiness(ctx)
    ctx.metrics.ready.set(1 if ready else 0)
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(ctx.metrics.registry), content_type=content_type)
