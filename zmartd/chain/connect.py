"""Where an actor reaches the chain: the devchain's bound URLs in local mode
(its ports may be picked at start), the configured endpoints otherwise."""

from __future__ import annotations

from zmartd.config import chain_endpoints
from zmartd.context import ActorContext

__all__ = ["chain_urls"]


async def chain_urls(ctx: ActorContext) -> tuple[list[str], str]:
    """``(rpc_urls, ws_url)``; in local mode waits for the ``devchain`` service."""
    cfg = ctx.config
    if cfg.chain.mode == "local":
        from zmartd.devchain.actor import Devchain

        chain = await ctx.services.get("devchain", Devchain)
        return [chain.rpc_url], chain.ws_url
    ep = chain_endpoints(cfg)
    return list(ep.rpc_urls), ep.ws_url
