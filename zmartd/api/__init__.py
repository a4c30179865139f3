"""The HTTP surface: ``rest`` (routes, request parsing) → handlers → storage.

``/health``, ``/ready`` and ``/metrics`` (the ops surface) live in
:mod:`zmartd.api.rest.ops`; the server actor in :mod:`zmartd.api.server`.
"""
