"""A ManageSieve session (RFC 5804): its states, and what each command does and answers.

States: not authenticated (CAPABILITY, STARTTLS, AUTHENTICATE, NOOP, LOGOUT) and
authenticated (also HAVESPACE, PUTSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT,
RENAMESCRIPT, CHECKSCRIPT and UNAUTHENTICATE). ``execute`` takes one parsed command and gives
a ``Reply``: the bytes to send and what the connection must do next (start TLS, close). The
session does no socket I/O; the SASL exchange reaches the client through a callback.

Rules implemented (section numbers of RFC 5804):

* 1.6 script names: UTF-8, 1 to 128 characters, no controls (U+0000-001F, U+007F-009F),
  U+2028 or U+2029; and no "/", so that every script can be the target of ``include``.
* 2.1 AUTHENTICATE with an optional initial response; challenges and responses are strings
  (quoted or literal) of base64; ``"*"`` aborts. With ``auth.require-tls`` (the default) it
  needs TLS first: ``NO (ENCRYPT-NEEDED)``, and SASL is advertised empty before STARTTLS.
* 2.5 HAVESPACE and 2.6 PUTSCRIPT: ``NO (QUOTA/MAXSIZE)`` over ``max-script-size``,
  ``NO (QUOTA/MAXSCRIPTS)`` when a new script would exceed ``max-scripts``. PUTSCRIPT and
  2.12 CHECKSCRIPT check the script: a syntax error is ``NO`` with the parser's message
  (line, column, what was expected).
* 2.8 SETACTIVE, with "" deactivating; 2.9 GETSCRIPT (a literal); 2.10 DELETESCRIPT refuses
  the active script ``NO (ACTIVE)``; 2.11.1 RENAMESCRIPT; missing scripts ``NO (NONEXISTENT)``,
  a taken name ``NO (ALREADYEXISTS)``; 2.11.2 NOOP echoes its tag ``OK (TAG "...")``;
  2.14 UNAUTHENTICATE returns to the unauthenticated state.
* RFC 6609 global scripts: an administrator reads, writes and deletes the server's global
  scripts as ``global/<name>`` (listed by LISTSCRIPTS for administrators, never active);
  anyone else is refused. PUTSCRIPT refuses a script whose includes lead back to itself.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protocols.managesieve import responses
from protocols.managesieve.parser import Atom, Item, String
from stalwart_py import __version__, sasl
from stalwart_py.config.types import IPAddress
from stalwart_py.directory import AuthThrottled, Directory, Logger
from stalwart_py.sieve import EXTENSIONS, NOTIFY_METHODS, Limits, SieveSyntaxError, parse_script
from stalwart_py.sieve.include import check_upload
from stalwart_py.sieve.validate import GLOBAL_PREFIX
from stalwart_py.store import Account, AlreadyExists, NotFound, Store, StoreError
from stalwart_py.two_factor import TwoFactorRequired

_SCRIPT_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029/]{1,128}\Z")
MAX_REDIRECTS = Limits().max_redirects
MAX_INCLUDE_DEPTH = Limits().max_include_depth


class CommandError(Exception):
    """A command that cannot be carried out: answered NO (with a response code)."""

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    start_tls: bool = False  # send data, then the TLS handshake, then the capabilities
    close: bool = False  # send data, then close
    bad: bool = False  # not a command at all: counts towards max-bad-commands


@dataclass(frozen=True, slots=True)
class Policy:
    """What the protocol's settings say, for one session."""

    max_scripts: int
    max_script_size: int
    require_tls: bool


Exchange = Callable[[bytes], Awaitable[bytes]]


class Session:
    def __init__(
        self,
        store: Store,
        directory: Directory,
        policy: Policy,
        *,
        peer_ip: IPAddress | None,
        tls: bool,
        tls_available: bool = True,
        on_login: Callable[[str], None] | None = None,
        log: Logger | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.policy = policy
        self.peer_ip = peer_ip
        self.tls = tls
        self.tls_available = tls_available
        self.account: Account | None = None
        self.on_login = on_login or (lambda result: None)
        self.log = log  # where the directory logs refused logins (the session's logger)

    # -- capabilities -------------------------------------------------------------------

    def capabilities(self) -> bytes:
        """The capability response (the greeting, CAPABILITY, and after STARTTLS)."""
        mechanisms = "" if self.policy.require_tls and not self.tls else " ".join(
            self.directory.mechanisms()
        )  # fmt: skip
        items: list[tuple[str, str | None]] = [
            ("IMPLEMENTATION", f"stalwart-py {__version__}"),
            ("SASL", mechanisms),
            ("SIEVE", " ".join(EXTENSIONS)),
            ("NOTIFY", " ".join(NOTIFY_METHODS)),  # RFC 5804 1.7: the enotify methods
        ]
        if not self.tls and self.tls_available:
            items.append(("STARTTLS", None))
        items += [
            ("MAXREDIRECTS", str(MAX_REDIRECTS)),
            ("VERSION", "1.0"),
            ("UNAUTHENTICATE", None),
        ]
        if self.account is not None:
            items.append(("OWNER", self.account.address))
        return responses.capabilities(items)

    # -- dispatch -----------------------------------------------------------------------

    async def execute(self, items: tuple[Item, ...], exchange: Exchange) -> Reply:
        if not items or not isinstance(items[0], Atom):
            return Reply(responses.no("expected a command name"), bad=True)
        name = items[0].text.upper()
        arguments = items[1:]
        handler = _HANDLERS.get(name)
        if handler is None:
            return Reply(responses.no(f"unknown command {name[:30]}"), bad=True)
        function, needs_auth = handler
        if needs_auth and self.account is None:
            return Reply(responses.no(f"{name} needs authentication first"))
        try:
            return await function(self, arguments, exchange)
        except CommandError as error:
            return Reply(responses.no(error.text, error.code))

    # -- commands valid in any state ------------------------------------------------------

    async def cmd_capability(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 0, "CAPABILITY")
        return Reply(self.capabilities() + responses.ok("Capability completed"))

    async def cmd_noop(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        if len(args) > 1:
            raise CommandError("NOOP takes at most one argument")
        if args:
            tag = _text(args[0], "the tag")
            return Reply(responses.ok("Done", "TAG " + responses.string(tag).decode("utf-8")))
        return Reply(responses.ok("Done"))

    async def cmd_logout(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        return Reply(responses.ok("Logout completed"), close=True)

    # -- not authenticated --------------------------------------------------------------

    async def cmd_starttls(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 0, "STARTTLS")
        if self.tls or not self.tls_available:
            raise CommandError("TLS is already active" if self.tls else "TLS is not available")
        if self.account is not None:
            raise CommandError("STARTTLS is only allowed before authentication")
        return Reply(responses.ok("Begin TLS negotiation now"), start_tls=True)

    async def cmd_authenticate(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        if self.account is not None:
            raise CommandError("already authenticated")
        if not 1 <= len(args) <= 2:
            raise CommandError("AUTHENTICATE takes a mechanism and an optional initial response")
        if self.policy.require_tls and not self.tls:
            self.on_login("encrypt-needed")
            raise CommandError("use STARTTLS before authenticating", "ENCRYPT-NEEDED")
        mechanism = _text(args[0], "the mechanism").upper()
        if mechanism not in self.directory.mechanisms():
            raise CommandError(f"unsupported mechanism {mechanism[:30]}")
        initial = None
        if len(args) == 2:
            try:
                initial = sasl.decode_response(_bytes(args[1], "the initial response"))
            except sasl.SaslError as error:
                self.on_login("error")
                raise CommandError(error.reason) from None
        try:
            account = await self.directory.authenticate(
                mechanism, initial, exchange, self.peer_ip, log=self.log, protocol="managesieve"
            )
        except AuthThrottled as error:
            self.on_login("throttled")
            raise CommandError(str(error), "TRYLATER") from None
        except sasl.AuthFailed as error:
            self.on_login("failure")
            text = str(error) if isinstance(error, TwoFactorRequired) else "Authentication failed"
            raise CommandError(text) from None
        except sasl.AuthAborted:
            self.on_login("aborted")
            raise CommandError("Authentication aborted") from None
        except (sasl.SaslError, ValueError) as error:
            self.on_login("error")
            raise CommandError(getattr(error, "reason", None) or str(error)) from None
        self.account = account
        self.on_login("success")
        return Reply(responses.ok("Authenticated"))

    # -- authenticated ------------------------------------------------------------------

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return self.account.id

    async def cmd_unauthenticate(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 0, "UNAUTHENTICATE")
        self.account = None
        return Reply(responses.ok("Unauthenticate completed"))

    async def cmd_havespace(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 2, "HAVESPACE")
        name = _script_name(args[0])
        if not isinstance(args[1], Atom) or not (args[1].text.isascii() and args[1].text.isdigit()):
            raise CommandError("HAVESPACE takes a script name and a size (a number)")
        await self._check_quota(name, int(args[1].text))
        return Reply(responses.ok("Putscript would succeed"))

    async def _check_quota(self, name: str, size: int) -> None:
        if size > self.policy.max_script_size:
            raise CommandError(
                f"the script is {size} bytes; the limit is {self.policy.max_script_size}",
                "QUOTA/MAXSIZE",
            )
        scripts = await self.store.list_scripts(self.account_id)
        if len(scripts) >= self.policy.max_scripts and all(s.name != name for s in scripts):
            raise CommandError(
                f"there are already {len(scripts)} scripts, the limit", "QUOTA/MAXSCRIPTS"
            )

    def _check_script(self, content: Item) -> str:
        data = _bytes(content, "the script")
        if len(data) > self.policy.max_script_size:
            raise CommandError(
                f"the script is {len(data)} bytes; the limit is {self.policy.max_script_size}",
                "QUOTA/MAXSIZE",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("the script is not valid UTF-8") from None
        try:
            parse_script(text, max_size=self.policy.max_script_size)
        except SieveSyntaxError as error:
            raise CommandError(str(error)) from None
        return text

    async def cmd_putscript(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 2, "PUTSCRIPT")
        global_name = self._global_name(args[0])
        name = global_name if global_name is not None else _script_name(args[0])
        text = self._check_script(args[1])
        await self._check_includes(name, global_name is not None, text)
        if global_name is not None:
            await self.store.put_global_script(global_name, text)
            return Reply(responses.ok("Putscript completed (global script)"))
        await self._check_quota(name, len(text.encode("utf-8")))
        await self.store.put_script(self.account_id, name, text)
        return Reply(responses.ok("Putscript completed"))

    def _global_name(self, item: Item) -> str | None:
        """RFC 6609 global scripts: ``global/<name>`` names the administrator's global script
        ``<name>`` (no personal script name has a "/"); only administrators reach them."""
        if not isinstance(item, String) or not item.data.startswith(GLOBAL_PREFIX.encode()):
            return None
        if self.account is None or not self.account.is_admin:
            raise CommandError("only an administrator may manage global scripts")
        name = _text(item, "the script name")[len(GLOBAL_PREFIX) :]
        if not _SCRIPT_NAME.match(name):
            raise CommandError(f"invalid global script name {name[:40]!r}")
        return name

    async def _check_includes(self, name: str, is_global: bool, text: str) -> None:
        """RFC 6609 3.2: a script whose includes lead back to it is refused now."""
        key = GLOBAL_PREFIX + name if is_global else name
        try:
            await check_upload(
                self.store,
                None if is_global else self.account_id,
                key,
                parse_script(text, max_size=self.policy.max_script_size),
                lambda body: parse_script(body, max_size=self.policy.max_script_size),
                MAX_INCLUDE_DEPTH,
            )
        except SieveSyntaxError as error:
            raise CommandError(str(error)) from None

    async def cmd_checkscript(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 1, "CHECKSCRIPT")
        self._check_script(args[0])
        return Reply(responses.ok("Script is valid"))

    async def cmd_listscripts(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 0, "LISTSCRIPTS")
        lines = [
            responses.string(script.name) + (b" ACTIVE" if script.active else b"") + b"\r\n"
            for script in await self.store.list_scripts(self.account_id)
        ]
        if self.account is not None and self.account.is_admin:  # the global ones, by name
            lines += [
                responses.string(GLOBAL_PREFIX + script.name) + b"\r\n"
                for script in await self.store.list_global_scripts()
            ]
        return Reply(b"".join(lines) + responses.ok("Listscripts completed"))

    async def cmd_setactive(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 1, "SETACTIVE")
        name = _text(args[0], "the script name")
        if self._global_name(args[0]) is not None:
            raise CommandError("a global script is only included, never active")
        try:
            await self.store.set_active_script(
                self.account_id, _script_name(args[0]) if name else None
            )
        except NotFound:
            raise CommandError(f"there is no script {name}", "NONEXISTENT") from None
        return Reply(responses.ok("Setactive completed"))

    async def cmd_getscript(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 1, "GETSCRIPT")
        global_name = self._global_name(args[0])
        if global_name is not None:
            script = await self.store.get_global_script(global_name)
            name = GLOBAL_PREFIX + global_name
        else:
            name = _script_name(args[0])
            script = await self.store.get_script(self.account_id, name)
        if script is None:
            raise CommandError(f"there is no script {name}", "NONEXISTENT")
        data = script.body.encode("utf-8")
        return Reply(b"{%d}\r\n" % len(data) + data + b"\r\n" + responses.ok("Getscript completed"))

    async def cmd_deletescript(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 1, "DELETESCRIPT")
        global_name = self._global_name(args[0])
        if global_name is not None:
            try:
                await self.store.delete_global_script(global_name)
            except NotFound:
                raise CommandError(
                    f"there is no global script {global_name}", "NONEXISTENT"
                ) from None
            return Reply(responses.ok("Deletescript completed"))
        name = _script_name(args[0])
        script = await self.store.get_script(self.account_id, name)
        if script is None:
            raise CommandError(f"there is no script {name}", "NONEXISTENT")
        if script.active:
            raise CommandError("the active script cannot be deleted", "ACTIVE")
        try:
            await self.store.delete_script(self.account_id, name)
        except NotFound:
            raise CommandError(f"there is no script {name}", "NONEXISTENT") from None
        except StoreError:  # made active meanwhile
            raise CommandError("the active script cannot be deleted", "ACTIVE") from None
        return Reply(responses.ok("Deletescript completed"))

    async def cmd_renamescript(self, args: tuple[Item, ...], exchange: Exchange) -> Reply:
        _arity(args, 2, "RENAMESCRIPT")
        if self._global_name(args[0]) is not None or self._global_name(args[1]) is not None:
            raise CommandError("global scripts are renamed by PUTSCRIPT and DELETESCRIPT")
        old, new = _script_name(args[0]), _script_name(args[1])
        try:
            await self.store.rename_script(self.account_id, old, new)
        except NotFound:
            raise CommandError(f"there is no script {old}", "NONEXISTENT") from None
        except AlreadyExists:
            raise CommandError(f"a script {new} already exists", "ALREADYEXISTS") from None
        return Reply(responses.ok("Renamescript completed"))


_HANDLERS: dict[str, tuple[Callable[..., Awaitable[Reply]], bool]] = {
    "CAPABILITY": (Session.cmd_capability, False),
    "NOOP": (Session.cmd_noop, False),
    "LOGOUT": (Session.cmd_logout, False),
    "STARTTLS": (Session.cmd_starttls, False),
    "AUTHENTICATE": (Session.cmd_authenticate, False),
    "UNAUTHENTICATE": (Session.cmd_unauthenticate, True),
    "HAVESPACE": (Session.cmd_havespace, True),
    "PUTSCRIPT": (Session.cmd_putscript, True),
    "CHECKSCRIPT": (Session.cmd_checkscript, True),
    "LISTSCRIPTS": (Session.cmd_listscripts, True),
    "SETACTIVE": (Session.cmd_setactive, True),
    "GETSCRIPT": (Session.cmd_getscript, True),
    "DELETESCRIPT": (Session.cmd_deletescript, True),
    "RENAMESCRIPT": (Session.cmd_renamescript, True),
}


def _arity(args: tuple[Item, ...], count: int, name: str) -> None:
    if len(args) != count:
        plural = "argument" if count == 1 else "arguments"
        raise CommandError(f"{name} takes {count} {plural}")


def _bytes(item: Item, what: str) -> bytes:
    if isinstance(item, String):
        return item.data
    raise CommandError(f"expected a string for {what}")


def _text(item: Item, what: str) -> str:
    if isinstance(item, Atom):
        return item.text
    try:
        return item.data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{what} is not valid UTF-8") from None


def _script_name(item: Item) -> str:
    if not isinstance(item, String):
        raise CommandError("expected a script name (a quoted string)")
    name = _text(item, "the script name")
    if not _SCRIPT_NAME.match(name):
        raise CommandError(f"invalid script name {name[:40]!r}")
    return name
