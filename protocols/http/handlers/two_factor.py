"""An account's two-factor sign-in (TOTP, RFC 6238): ``/api/accounts/{address}/totp``.

``POST`` starts an enrolment (the secret and its ``otpauth://`` URI, shown once), ``POST
.../confirm`` with the app's current code enables it and answers the 10 recovery codes (shown
once), ``DELETE`` disables it, ``GET`` says where it stands (``stalwart_py.two_factor``).

Who may: an administrator for any account, an account for itself, as for app passwords. Once
it is enabled the account signs in here with ``password$code`` (or ``password$recovery-code``),
so its own requests, ``DELETE`` among them, always carry a current code. Secrets and codes are
never logged.
"""

from __future__ import annotations

from protocols.http.handlers.app_passwords import managed_address
from protocols.http.handlers.directory import ADDRESS, created, refused
from protocols.http.messages import HttpError, Request, Response, json_response, no_content
from protocols.http.router import Access, RouteTable
from protocols.http.schemas import ref
from stalwart_py.store import Account, NotFound, StoreError

routes = RouteTable()


async def _account(request: Request) -> Account:
    address = managed_address(request)
    account = await request.session.server.directory.store.get_account(address)
    if account is None:
        raise HttpError(404, f"no account {address}")
    return account


def _by(request: Request) -> str:
    return request.account.address if request.account else "?"


@routes.get(
    "/api/accounts/{address}/totp",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="Whether two-factor sign-in is enabled, and the recovery codes left",
    responses={200: ("the state", ref("TwoFactorStatus"))},
)
async def totp_status(request: Request) -> Response:
    account = await _account(request)
    state = await request.session.server.directory.two_factor.status(account.id)
    enabled = state is not None and state.enabled
    return json_response(
        200,
        {
            "enabled": enabled,
            "pending": state is not None and not state.enabled,
            "recovery-codes-left": state.recovery_codes_left if state is not None else 0,
        },
    )


@routes.post(
    "/api/accounts/{address}/totp",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="Start enrolling two-factor sign-in: the secret, shown once; confirm it next",
    responses={
        201: ("started, not enabled until confirmed", ref("TwoFactorEnrolment")),
        409: ("two-factor sign-in is enabled already", ref("Error")),
    },
)
async def start_totp(request: Request) -> Response:
    account = await _account(request)
    server = request.session.server
    try:
        enrolment = await server.directory.two_factor.start(
            account.id, account.address, server.hostname
        )
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info(
        "two-factor enrolment started for %s by %s", account.address, _by(request)
    )
    path = request.path
    return created(path, {"secret": enrolment.secret, "uri": enrolment.uri})


@routes.post(
    "/api/accounts/{address}/totp/confirm",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="Enable two-factor sign-in with the app's current code; the recovery codes, once",
    body=ref("TwoFactorCode"),
    responses={
        200: ("enabled", ref("RecoveryCodes")),
        422: ("the code does not match, or no enrolment was started", ref("Error")),
    },
)
async def confirm_totp(request: Request) -> Response:
    account = await _account(request)
    try:
        codes = await request.session.server.directory.two_factor.confirm(
            account.id, request.data["code"]
        )
    except StoreError as exc:
        raise refused(exc) from None
    request.session.log.info(
        "two-factor sign-in enabled for %s by %s", account.address, _by(request)
    )
    return json_response(200, {"recovery-codes": codes})


@routes.delete(
    "/api/accounts/{address}/totp",
    tag="accounts",
    access=Access.ACCOUNT,
    params=(ADDRESS,),
    summary="Disable two-factor sign-in: the account's own password opens mail protocols again",
    responses={204: ("disabled", None), 404: ("it was not set up", ref("Error"))},
)
async def disable_totp(request: Request) -> Response:
    account = await _account(request)
    try:
        await request.session.server.directory.two_factor.disable(account.id)
    except NotFound as exc:
        raise HttpError(404, str(exc)) from None
    request.session.log.info(
        "two-factor sign-in disabled for %s by %s", account.address, _by(request)
    )
    return no_content()
