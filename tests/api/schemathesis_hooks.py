"""schemathesis hooks for the run against a zmartd process (loaded by the
``st`` command through ``SCHEMATHESIS_HOOKS``; see test_schemathesis_daemon.py).

* The ``format`` s zmartd's schema uses for rules a pattern cannot state,
  so that positive cases carry real keys and signatures.
* Authentication: every request carries the session the test signed in
  with (``ZMARTD_ST_TOKEN``), except ``POST /v1/auth/logout``, which gets a
  session of its own, signed in just for it (Sign-In-With-Solana against
  ``ZMARTD_ST_URL``) -- logging out the run's session would leave every
  later request answering 401.

Importing this module registers both globally: only the ``st`` process
loads it, never pytest's.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from tests.api.conftest import register_schemathesis_formats
from tests.api.siws import sign_in

register_schemathesis_formats()

LOGOUT = "/v1/auth/logout"


@schemathesis.auth()
class Session:
    def get(self, case: Any, ctx: Any) -> str:
        return os.environ["ZMARTD_ST_TOKEN"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        token = sign_in(os.environ["ZMARTD_ST_URL"]) if case.operation.path == LOGOUT else data
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
