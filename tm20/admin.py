"""
C{tm20-admin}: maintenance from the command line.

  - C{tm20-admin token create NAME [--scopes read,write] --database URL}: makes an API token,
    prints its secret once and stores only its sha256;
  - C{tm20-admin token list --database URL};
  - C{tm20-admin token revoke NAME --database URL}.

The database is C{--database}, else C{DATABASE_URL}, else C{sqlite:tm20.sqlite3} (the server's
default); its schema is migrated if needed.
"""

from __future__ import annotations

import getopt
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import react
from twisted.python import usage

from tm20.api._auth import SCOPES, hashToken, newSecret
from tm20.config import DEFAULT_DATABASE

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


class AdminOptions(_WithDatabase):
    """The options of C{tm20-admin}."""

    synopsis = "tm20-admin token create|list|revoke ..."
    subCommands = [["token", None, TokenOptions, "Manage REST API tokens."]]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("expected a command: token")


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
) -> Any:
    """
    Run one C{tm20-admin} command.

    @param argv: the arguments (without the program name).
    @param out: where results go (the secret of a new token).
    @param err: where errors go.
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
    token = options.subOptions
    command = token.subCommand
    leaf = token.subOptions
    try:
        yield store.start()
    except Exception as e:
        err.write(f"tm20-admin: cannot open the database: {e}\n")
        return EXIT_FAILED
    try:
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
