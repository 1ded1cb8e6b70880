"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.support.schemathesis_hooks``) that keep a
run from sawing off the branch it sits on.

Schemathesis calls every operation with what it generates and with what earlier answers
returned (stateful links): it would disable the HTTP listener it talks to (every later
request then gets 503) and change the password of the administrator it authenticates as
(every later request then gets 401). Both are legitimate requests, and tested elsewhere; here
they are redirected to a listener and an account the run does not depend on. The protected
names come from the environment that the test sets.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote

import schemathesis

PROTECTED_LISTENER = os.environ.get("STALWART_TEST_LISTENER", "http")
SPARE_LISTENER = os.environ.get("STALWART_TEST_SPARE_LISTENER", "smtp")
PROTECTED_ACCOUNT = os.environ.get("STALWART_TEST_ADMIN", "").lower()
SPARE_ACCOUNT = os.environ.get("STALWART_TEST_SPARE_ACCOUNT", "")


def _same(value: Any, name: str) -> bool:
    # the server strips, lower-cases and percent-decodes a path parameter before it looks
    return isinstance(value, str) and unquote(value).strip().lower() == name


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    path, method = case.operation.path, case.method.upper()
    params = case.path_parameters or {}
    if path == "/api/listeners/{id}/disable" and _same(params.get("id"), PROTECTED_LISTENER):
        params["id"] = SPARE_LISTENER
    elif (
        path == "/api/accounts/{address}"
        and method == "PATCH"
        and _same(params.get("address"), PROTECTED_ACCOUNT)
    ):
        params["address"] = SPARE_ACCOUNT
