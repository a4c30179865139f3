"""zmartd: the backend daemon of ZMART.

One trio process runs a supervised tree of actors (HTTP API, WebSocket hub,
chain listener/indexer, vote aggregator, snapshotter, monitor) that talk over
bounded memory channels.  See README.md for the map.
"""

__version__ = "0.1.0"
