"""The API's rules, between HTTP parsing (``zmartd.api.rest``) and SQL (``zmartd.storage``).

A handler receives typed values (never a request object), decides what is
allowed, calls storage functions (one ``Database.run`` crossing each) and
returns typed records or raises :class:`~zmartd.api.problems.Problem`.
Keeping HTTP out of here lets the same rules serve the REST routes, the
WebSocket hub and the command line.
"""
