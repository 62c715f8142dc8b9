"""
C{tm20-admin}: maintenance from the command line.

  - C{tm20-admin token create NAME [--scopes read,write] --database URL}: makes an API token,
    prints its secret once and stores only its sha256;
  - C{tm20-admin token list --database URL};
  - C{tm20-admin token revoke NAME --database URL};
  - C{tm20-admin user create NAME --role viewer|operator|admin [--password-file FILE]}: a console
    account (the password is asked twice at the prompt, or read from the first line of FILE;
    never an argument);
  - C{tm20-admin user list}, C{user passwd NAME [--password-file FILE]}, C{user disable NAME},
    C{user enable NAME}.

The database is C{--database}, else C{DATABASE_URL}, else C{sqlite:tm20.sqlite3} (the server's
default); its schema is migrated if needed.
"""

from __future__ import annotations

import getopt
import getpass
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from twisted.internet.defer import ensureDeferred, inlineCallbacks
from twisted.internet.task import react
from twisted.python import usage

from tm20.config import DEFAULT_DATABASE
from tm20.services.tokens import SCOPES, hashToken, newSecret

__all__ = ["AdminOptions", "main", "run"]

#: Exit codes.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class _WithDatabase(usage.Options):
    """Options taking C{--database}; options may also follow the positional arguments."""

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        if options is None or getattr(self, "subCommands", None):
            super().parseOptions(None if options is None else list(options))
            return
        try:
            found, rest = getopt.gnu_getopt(list(options), self.shortOpt, self.longOpt)
        except getopt.GetoptError as e:
            raise usage.UsageError(str(e)) from None
        ordered: list[str] = []
        for flag, value in found:
            if value and flag.startswith("--"):
                ordered.append(f"{flag}={value}")
            elif value:
                ordered.extend([flag, value])
            else:
                ordered.append(flag)
        super().parseOptions([*ordered, "--", *rest])

    optParameters = [
        [
            "database",
            "d",
            None,
            f"sqlite:PATH or postgresql://... [DATABASE_URL] ({DEFAULT_DATABASE})",
        ],
    ]


class TokenCreateOptions(_WithDatabase):
    """C{token create NAME [--scopes read,write]}."""

    synopsis = "NAME [--scopes read,write] [--database URL]"
    optParameters = [
        ["scopes", "s", "read,write", "Comma-separated scopes: read (GET), write (changes)."],
    ]

    # usage.Options.parseArgs takes no argument; one positional argument is what this takes.
    def parseArgs(self, name: str) -> None:  # type: ignore[override]
        self["name"] = name.strip()

    def postOptions(self) -> None:
        if not self["name"] or ":" in self["name"]:
            raise usage.UsageError("NAME must be non-empty and contain no ':'")
        scopes = tuple(dict.fromkeys(s.strip() for s in self["scopes"].split(",") if s.strip()))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise usage.UsageError(f"--scopes must be a non-empty subset of {', '.join(SCOPES)}")
        self["scopes"] = scopes


class TokenListOptions(_WithDatabase):
    """C{token list}."""

    synopsis = "[--database URL]"


class TokenRevokeOptions(_WithDatabase):
    """C{token revoke NAME}."""

    synopsis = "NAME [--database URL]"

    # usage.Options.parseArgs takes no argument; one positional argument is what this takes.
    def parseArgs(self, name: str) -> None:  # type: ignore[override]
        self["name"] = name.strip()


class TokenOptions(_WithDatabase):
    """C{token create|list|revoke}."""

    synopsis = "create|list|revoke ..."
    subCommands = [
        ["create", None, TokenCreateOptions, "Create an API token (its secret is shown once)."],
        ["list", None, TokenListOptions, "List the stored API tokens."],
        ["revoke", None, TokenRevokeOptions, "Delete an API token."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("expected create, list or revoke")


class _UserNamed(_WithDatabase):
    synopsis = "NAME [--database URL]"

    # usage.Options.parseArgs takes no argument; one positional argument is what this takes.
    def parseArgs(self, name: str) -> None:  # type: ignore[override]
        self["name"] = name.strip()


class _WithPassword(_UserNamed):
    optParameters = [
        [
            "password-file",
            None,
            None,
            "Read the password from the first line of this file (else it is asked twice).",
        ],
    ]


class UserCreateOptions(_WithPassword):
    """C{user create NAME --role ROLE [--password-file FILE]}."""

    synopsis = "NAME --role viewer|operator|admin [--password-file FILE] [--database URL]"
    optParameters = [
        ["role", "r", None, "viewer (reads), operator (also acts), admin (also accounts...)."],
    ]

    def postOptions(self) -> None:
        from tm20.model import CONSOLE_ROLES

        if self["role"] not in CONSOLE_ROLES:
            raise usage.UsageError(f"--role must be one of {', '.join(CONSOLE_ROLES)}")


class UserPasswdOptions(_WithPassword):
    """C{user passwd NAME [--password-file FILE]}."""

    synopsis = "NAME [--password-file FILE] [--database URL]"


class UserListOptions(_WithDatabase):
    """C{user list}."""

    synopsis = "[--database URL]"


class UserOptions(_WithDatabase):
    """C{user create|list|passwd|disable|enable}."""

    synopsis = "create|list|passwd|disable|enable ..."
    subCommands = [
        ["create", None, UserCreateOptions, "Create a console account."],
        ["list", None, UserListOptions, "List the console accounts."],
        ["passwd", None, UserPasswdOptions, "Set an account's password (ends its sessions)."],
        ["disable", None, _UserNamed, "Disable an account (ends its sessions)."],
        ["enable", None, _UserNamed, "Enable a disabled account."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("expected create, list, passwd, disable or enable")


class AdminOptions(_WithDatabase):
    """The options of C{tm20-admin}."""

    synopsis = "tm20-admin token|user ..."
    subCommands = [
        ["token", None, TokenOptions, "Manage REST API tokens."],
        ["user", None, UserOptions, "Manage console accounts."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("expected a command: token or user")


class _PasswordError(Exception):
    pass


def _password(leaf: Any, prompt: Callable[[str], str]) -> str:
    """The password of a C{user create|passwd}: from C{--password-file}, else asked twice."""
    path = leaf["password-file"]
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise _PasswordError(f"cannot read {path}: {e}") from None
    first = prompt("Password: ")
    if prompt("Password again: ") != first:
        raise _PasswordError("the passwords differ")
    return first


def _database(options: AdminOptions, environ: Mapping[str, str]) -> str:
    """The most specific --database given, else DATABASE_URL, else the default."""
    chosen: str | None = options["database"]
    current: Any = options
    while getattr(current, "subOptions", None) is not None:
        current = current.subOptions
        if current.get("database"):
            chosen = current["database"]
    return (chosen or environ.get("DATABASE_URL") or DEFAULT_DATABASE).strip()


@inlineCallbacks
def run(
    reactor: Any,
    argv: Sequence[str],
    out: TextIO,
    err: TextIO,
    environ: Mapping[str, str] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Any:
    """
    Run one C{tm20-admin} command.

    @param argv: the arguments (without the program name).
    @param out: where results go (the secret of a new token).
    @param err: where errors go.
    @param prompt: asks for a password without echo (L{getpass.getpass} when C{None}).
    @return: a L{Deferred} of the exit code.
    """
    options = AdminOptions()
    try:
        options.parseOptions(list(argv))
    except usage.UsageError as e:
        err.write(f"tm20-admin: {e}\n{options}\n")
        return EXIT_USAGE
    from tm20.store import storeFromURL

    try:
        store = storeFromURL(
            _database(options, os.environ if environ is None else environ), reactor
        )
    except ValueError as e:
        err.write(f"tm20-admin: {e}\n")
        return EXIT_USAGE
    group = options.subCommand
    token = options.subOptions
    command = token.subCommand
    leaf = token.subOptions
    password = ""
    if group == "user" and command in ("create", "passwd"):
        try:
            password = _password(leaf, prompt if prompt is not None else getpass.getpass)
        except _PasswordError as e:
            err.write(f"tm20-admin: {e}\n")
            return EXIT_USAGE
    try:
        yield store.start()
    except Exception as e:
        err.write(f"tm20-admin: cannot open the database: {e}\n")
        return EXIT_FAILED
    try:
        if group == "user":
            code = yield ensureDeferred(_user(reactor, store, command, leaf, password, out, err))
            return code
        if command == "create":
            secret = newSecret()
            try:
                yield store.addApiToken(leaf["name"], hashToken(secret), leaf["scopes"])
            except ValueError:
                err.write(f"tm20-admin: a token named {leaf['name']!r} already exists\n")
                return EXIT_FAILED
            out.write(
                f"created API token {leaf['name']!r} with scopes {','.join(leaf['scopes'])}.\n"
                "Its secret is shown only now; send it as 'Authorization: Bearer SECRET':\n"
                f"{secret}\n"
            )
        elif command == "list":
            tokens = yield store.listApiTokens()
            for t in tokens:
                created = t.createdAt.isoformat() if t.createdAt is not None else "-"
                out.write(f"{t.name}\t{','.join(t.scopes)}\t{created}\n")
            if not tokens:
                out.write("no API tokens stored\n")
        else:
            deleted = yield store.deleteApiToken(leaf["name"])
            if not deleted:
                err.write(f"tm20-admin: no token named {leaf['name']!r}\n")
                return EXIT_FAILED
            out.write(f"revoked API token {leaf['name']!r}\n")
    except Exception as e:
        err.write(f"tm20-admin: {type(e).__name__}: {e}\n")
        return EXIT_FAILED
    finally:
        yield store.stop()
    return EXIT_OK


async def _user(
    reactor: Any, store: Any, command: str, leaf: Any, password: str, out: TextIO, err: TextIO
) -> int:
    """One C{user} command, through the account service (its rules: name, role, password)."""
    from tm20.services.accounts import AccountService
    from tm20.services.errors import ServiceError

    accounts = AccountService(store, reactor)
    try:
        if command == "create":
            account = await accounts.create(leaf["name"], leaf["role"], password)
            out.write(f"created console account {account.name!r} with role {account.role}\n")
        elif command == "list":
            found = await accounts.list()
            for a in found:
                created = datetime.fromtimestamp(a.createdAt, tz=UTC).isoformat(timespec="seconds")
                state = "disabled" if a.disabled else "enabled"
                out.write(f"{a.name}\t{a.role}\t{state}\t{created}\n")
            if not found:
                out.write("no console accounts\n")
        elif command == "passwd":
            await accounts.setPassword(leaf["name"], password)
            out.write(f"changed the password of {leaf['name']!r} (its sessions ended)\n")
        else:
            await accounts.setDisabled(leaf["name"], command == "disable")
            out.write(f"{command}d console account {leaf['name']!r}\n")
    except ServiceError as e:
        err.write(f"tm20-admin: {e.detail}\n")
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> None:
    """The C{tm20-admin} console script: runs L{run} on the reactor and exits with its code."""
    args = list(sys.argv[1:] if argv is None else argv)
    stdout = sys.stdout if out is None else out

    def go(reactor: Any) -> Any:
        d = run(reactor, args, stdout, sys.stderr)

        def exit(code: int) -> None:
            if code:
                raise SystemExit(code)

        return d.addCallback(exit)

    react(go)


if __name__ == "__main__":
    main()
