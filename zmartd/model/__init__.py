"""Types shared between actors, so that none of them imports another.

The indexer publishes changes in the REST shapes (:mod:`~zmartd.model.views`), the
WebSocket hub authenticates with the API's sessions (:mod:`~zmartd.model.sessions`),
the webhook route wakes the indexer and the indexer finds the local chain through typed
service keys (:mod:`~zmartd.model.services`). This layer sits above storage and below the
actor packages (``tools/check_imports.py`` enforces it).
"""
