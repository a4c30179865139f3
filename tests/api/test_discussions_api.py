"""Discussions over HTTP: threads, replies, length limits, soft delete by the
author or an admin (audited), hidden content, events."""

from __future__ import annotations

from tests.api import factories as fx
from tests.api.conftest import live_api
from tests.storage import factories as f
from zmartd.bus import DiscussionChanged
from zmartd.storage import audit
from zmartd.storage.database import Database


async def test_threads_replies_and_deletion(db: Database) -> None:
    m = await fx.seed_market(db)
    author, other, admin = (f.wallet(fx.fresh()) for _ in range(3))
    async with live_api(fx.config(admin={"wallets": [admin]}), db) as api:
        c = api.client
        url = f"/v1/markets/{m.market_id}/discussions"
        ha, ho, hadmin = [fx.headers(await fx.session(db, w)) for w in (author, other, admin)]
        assert (await c.post(url, json={"content": "hi"})).status_code == 401
        events = api.ctx.bus.topic("events").subscribe("test")
        root = await c.post(url, json={"content": "Will it rain?"}, headers=ha)
        assert root.status_code == 201, root.text
        root_id = root.json()["id"]
        event = events.receive_nowait()
        assert isinstance(event, DiscussionChanged) and event.data["id"] == root_id
        reply = await c.post(url, json={"content": "yes", "parent_id": root_id}, headers=ho)
        assert reply.status_code == 201 and reply.json()["parent_id"] == root_id
        nested = await c.post(
            url, json={"content": "no", "parent_id": reply.json()["id"]}, headers=ha
        )
        second = await c.post(url, json={"content": "another topic"}, headers=ho)
        for bad in [
            {"content": ""},
            {"content": "x" * 2001},
            {"content": "a\u0000"},
            {"content": "x", "parent_id": 0},
        ]:
            assert (await c.post(url, json=bad, headers=ha)).status_code == 422, bad
        # valid by the schema, refused by the text rule: nothing a reader can see
        for blank in [{"content": "   \n"}, {"content": "\u200b\u200d\ufeff"}]:
            r = await c.post(url, json=blank, headers=ha)
            assert r.status_code == 400 and "visible" in r.text, blank
        assert (
            await c.post(url, json={"content": "x", "parent_id": 2**62}, headers=ha)
        ).status_code == 404
        assert (
            await c.post(f"/v1/markets/{'aa' * 32}/discussions", json={"content": "x"}, headers=ha)
        ).status_code == 404
        page = (await c.get(url, params={"limit": "1"})).json()
        assert page["items"][0]["root"]["id"] == second.json()["id"]
        rest = (await c.get(url, params={"limit": "1", "cursor": page["next_cursor"]})).json()
        thread = rest["items"][0]
        assert thread["root"]["id"] == root_id and rest["next_cursor"] is None
        assert [r["id"] for r in thread["replies"]] == [reply.json()["id"], nested.json()["id"]]
        assert (await c.get(url, params={"limit": "51"})).status_code == 422
        # deletion: only the author or an admin; content hidden afterwards
        assert (await c.delete(f"/v1/discussions/{root_id}", headers=ho)).status_code == 403
        assert (await c.delete(f"/v1/discussions/{root_id}")).status_code == 401
        gone = await c.delete(f"/v1/discussions/{root_id}", headers=ha)
        assert gone.status_code == 204 and gone.content == b""
        assert (await c.delete(f"/v1/discussions/{root_id}", headers=ha)).status_code == 404
        assert (await c.delete("/v1/discussions/abc", headers=ha)).status_code == 422
        thread = (await c.get(url)).json()["items"][1]
        assert thread["root"]["deleted"] is True and thread["root"]["content"] is None
        assert thread["replies"][0]["content"] == "yes"
        r = await c.post(url, json={"content": "late", "parent_id": root_id}, headers=ho)
        assert r.status_code == 409
        # an admin may delete anyone's post, and it is audited
        moderated = await c.delete(f"/v1/discussions/{second.json()['id']}", headers=hadmin)
        assert moderated.status_code == 204
        log = await audit.list_admin_actions(db, actor=admin)
        assert [(e.action, e.target_id) for e in log.items] == [
            ("discussion.delete", str(second.json()["id"]))
        ]
