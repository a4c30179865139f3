"""The WebSocket hub (``ws`` actor): per-market subscriptions, sequence
numbers with resume, heartbeats, slow-consumer policy, Redis fan-out.

* :mod:`.protocol` -- the message vocabulary (docs/websocket.md in prose);
* :mod:`.replay` -- bounded per-channel buffers behind ``since``;
* :mod:`.hub` -- connections, subscriptions, fan-out;
* :mod:`.fanout` -- Redis sequencing and delivery across instances;
* :mod:`.actor` -- the supervised actor.
"""
