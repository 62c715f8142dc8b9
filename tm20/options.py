"""
How a C{twistd tm20} option is declared, parsed and shown.

Each option is declared once, on its field of L{tm20.config.ServerConfig}::

    heartbeatInterval: float = attrs.field(
        default=30.0,
        metadata=option("heartbeat-interval", "TM20_HEARTBEAT_INTERVAL", seconds(0),
                        "seconds of silence after which a terminal is probed with `gettime`"),
    )

The field gives the type and the default; L{option} gives the name on the command line, the
environment variable, the parser and the text (Markdown, as in README's configuration table).
From these declarations come C{tm20.tap.Options} (flags, parameters, C{--help}, the
environment), C{tm20.tac} (which parses the environment alone) and README's table
(L{readmeTable}; C{python -m tm20.config} prints it, C{--write README.md} rewrites it).

A parser takes C{(source, text)}: C{source} names where the text came from (C{--name} or the
environment variable), for the error message, a L{usage.UsageError}.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
from twisted.python import usage

#: The key of an option's declaration in its field's C{attrs} metadata.
METADATA_KEY = "tm20.option"

Parser = Callable[[str, str], Any]
Kind = Literal["value", "flag", "list"]


@attrs.frozen
class Option:
    """
    One option of C{twistd tm20}.

    @ivar name: its name on the command line, without C{--}.
    @ivar env: its environment variable (C{None}: none).
    @ivar parse: C{(source, text) -> value}; raises L{usage.UsageError} naming C{source}.
    @ivar doc: what it means, in Markdown (README's table; C{--help} gets it as plain text).
    @ivar kind: C{"value"} (C{--name VALUE}), C{"flag"} (C{--name}; the variable is C{0}/C{1})
        or C{"list"} (C{--name VALUE}, repeatable; the variable is comma-separated).
    @ivar short: a one-letter alias, or C{None}.
    @ivar shownDefault: the default as README shows it (Markdown); C{None}: the field's
        default in backquotes.
    @ivar envForm: what the variable holds, when it is not a single value (README).
    @ivar invert: for a flag, the field is C{False} when it is given (C{--no-sinks}).
    @ivar field: the L{tm20.config.ServerConfig} field it sets (filled by L{declaredOptions}).
    @ivar default: the field's default (filled by L{declaredOptions}).
    """

    name: str
    env: str | None
    parse: Parser
    doc: str
    kind: Kind = "value"
    short: str | None = None
    shownDefault: str | None = None
    envForm: str = ""
    invert: bool = False
    field: str = ""
    default: Any = None

    @property
    def key(self) -> str:
        """Its key in C{tm20.tap.Options} (the name on the command line)."""
        return self.name

    def defaultText(self) -> str:
        """The default, in Markdown."""
        if self.shownDefault is not None:
            return self.shownDefault
        value = self.default
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, float):
            value = f"{value:g}"
        return f"`{value}`"

    def helpText(self) -> str:
        """One line for C{twistd tm20 --help}."""
        where = f" [{self.env}{' ' + plainText(self.envForm) if self.envForm else ''}]"
        shown = plainText(self.defaultText())
        return f"{plainText(self.doc)}{where if self.env else ''}{f' ({shown})' if shown else ''}"


def option(
    name: str,
    env: str | None,
    parse: Parser,
    doc: str,
    *,
    kind: Kind = "value",
    short: str | None = None,
    shownDefault: str | None = None,
    envForm: str = "",
    invert: bool = False,
) -> dict[str, Option]:
    """The metadata of a L{tm20.config.ServerConfig} field that is an option (see the module)."""
    if kind == "flag" and not envForm and env is not None:
        envForm = "(`0`/`1`)"
    if kind == "list" and not envForm:
        envForm = "(comma-separated)"
    declared = Option(
        name=name,
        env=env,
        parse=parse,
        doc=doc,
        kind=kind,
        short=short,
        shownDefault=shownDefault,
        envForm=envForm,
        invert=invert,
    )
    return {METADATA_KEY: declared}


def declaredOptions(cls: type) -> tuple[Option, ...]:
    """The options declared on the fields of the C{attrs} class C{cls}, in field order."""
    found = []
    for field in attrs.fields(cls):
        declared = field.metadata.get(METADATA_KEY)
        if declared is not None:
            found.append(attrs.evolve(declared, field=field.name, default=field.default))
    return tuple(found)


def resolve(
    options: tuple[Option, ...],
    given: Mapping[str, Any],
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """
    Each option's value: given on the command line, else from its environment variable (an
    empty one counts as unset), else its default.

    @param given: what the command line set, by option name: the text of a value, C{True} for
        a flag, a list of texts for a list; C{None}, C{False} or C{[]} when not given.
    @return: field name -> value.
    """
    values: dict[str, Any] = {}
    for declared in options:
        values[declared.field] = _resolveOne(declared, given.get(declared.key), environ)
    return values


def _resolveOne(declared: Option, given: Any, environ: Mapping[str, str]) -> Any:
    fromEnv = environ.get(declared.env, "") if declared.env is not None else ""
    if declared.kind == "flag":
        on = bool(given) or (
            declared.env is not None and declared.parse(declared.env, fromEnv or "0")
        )
        return not on if declared.invert else on
    if declared.kind == "list":
        if given:
            texts = list(given)
            source = f"--{declared.name}"
        else:
            texts = [t for t in (s.strip() for s in fromEnv.split(",")) if t]
            source = declared.env or f"--{declared.name}"
        if not texts:
            return declared.default
        return tuple(declared.parse(source, text) for text in texts)
    if given is not None:
        return declared.parse(f"--{declared.name}", given)
    if declared.env is not None and fromEnv != "":
        return declared.parse(declared.env, fromEnv)
    return declared.default


# -- README --------------------------------------------------------------------------------------

README_BEGIN = "<!-- options: generated by `python -m tm20.config --write README.md` -->"
README_END = "<!-- options: end -->"


def readmeTable(options: tuple[Option, ...]) -> str:
    """README's configuration table (between L{README_BEGIN} and L{README_END})."""
    lines = [
        "| option | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for declared in options:
        name = f"`--{declared.name}`"
        if declared.short:
            name += f", `-{declared.short}`"
        if declared.kind == "list":
            name += " (repeatable)"
        env = f"`{declared.env}`" if declared.env else ""
        if env and declared.envForm:
            env += f" {declared.envForm}"
        cells = (name, env, declared.defaultText(), declared.doc)
        lines.append("|" + "|".join(f" {c} " if c else " " for c in cells) + "|")
    return "\n".join(lines)


def readmeSection(readme: str) -> str | None:
    """The table in C{readme} between the markers, or C{None} without them."""
    start = readme.find(README_BEGIN)
    end = readme.find(README_END)
    if start < 0 or end < start:
        return None
    return readme[start + len(README_BEGIN) : end].strip("\n")


def withReadmeTable(readme: str, options: tuple[Option, ...]) -> str:
    """C{readme} with its table replaced by the declared one."""
    start = readme.find(README_BEGIN)
    end = readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {README_BEGIN!r} ... {README_END!r} markers")
    return readme[: start + len(README_BEGIN)] + "\n" + readmeTable(options) + "\n" + readme[end:]


_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def plainText(markdown: str) -> str:
    """Markdown as plain text: no backquotes, links as their text."""
    return _LINK.sub(r"\1", markdown).replace("`", "")


# -- parsers -------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def boolean(name: str, value: str) -> bool:
    """C{1}/C{0} (and C{true}/C{false}, C{yes}/C{no}, C{on}/C{off}, empty: C{False})."""
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise usage.UsageError(f"{name} must be 0 or 1, not {value!r}")


def number(cast: Callable[[str], Any], minimum: float) -> Parser:
    """An C{int} or C{float} (C{cast}) of at least C{minimum}."""

    def convert(name: str, value: str) -> Any:
        try:
            n = cast(value)
        except ValueError:
            raise usage.UsageError(f"{name} must be a number, not {value!r}") from None
        if n < minimum:
            raise usage.UsageError(f"{name} must be at least {minimum:g}, not {value!r}")
        return n

    return convert


def seconds(minimum: float) -> Parser:
    """A number of seconds (a C{float}) of at least C{minimum}."""
    return number(float, minimum)


def integer(minimum: int) -> Parser:
    """An C{int} of at least C{minimum}."""
    return number(int, minimum)


def duration(minimum: float) -> Parser:
    """A duration (C{90}, C{90s}, C{5m}, C{2h}, C{30d}) in seconds, at least C{minimum}."""

    def convert(name: str, value: str) -> float:
        from tm20.events.sinks import parseDuration

        try:
            result = parseDuration(value)
        except ValueError as e:
            raise usage.UsageError(f"{name}: {e}") from None
        if result < minimum:
            raise usage.UsageError(f"{name} must be at least {minimum:g}s, not {value!r}")
        return result

    return convert


def nodeName(name: str, value: str) -> str:
    """A cluster node's name: 1 to 200 printable characters without spaces."""
    node = value.strip()
    if not node or len(node) > 200 or any(not c.isprintable() or c.isspace() for c in node):
        raise usage.UsageError(
            f"{name} must be 1 to 200 printable characters without spaces, not {value!r}"
        )
    return node


def workerCount(name: str, value: str) -> int:
    """C{auto} (one per core) or a whole number from 1."""
    if value.strip().lower() == "auto":
        return max(1, os.cpu_count() or 1)
    converted: int = number(int, 1)(name, value)
    return converted


def text(name: str, value: str) -> str:
    """Any text, as given."""
    return value


def endpoint(name: str, value: str) -> str:
    """A listening endpoint: a port number or a Twisted endpoint string (checked at start)."""
    return value


def networks(name: str, value: str) -> tuple[str, ...]:
    """C{CIDR[,CIDR...]}, each checked."""
    from tm20.terminal.limits import parseNetworks

    specs = tuple(p for p in (s.strip() for s in value.split(",")) if p)
    try:
        parseNetworks(specs)
    except ValueError as e:
        raise usage.UsageError(f"{name}: {e}") from None
    return specs


def oneOf(choices: tuple[str, ...], option: str) -> Parser:
    """One of C{choices}, in any case; the error names C{--option} whatever the source."""

    def convert(name: str, value: str) -> str:
        v = value.strip().lower()
        if v not in choices:
            raise usage.UsageError(f"--{option} must be one of {', '.join(choices)}")
        return v

    return convert


def timezone(name: str, value: str) -> str | None:
    """An IANA time zone name (C{Europe/Paris}); empty: C{None}."""
    if not value:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise usage.UsageError(
            f"unknown time zone {value!r} (use an IANA name such as Europe/Paris)"
        ) from None
    return value


def retrySchedule(name: str, value: str) -> str:
    """Delays between attempts (C{5s,30s,2m}), each checked."""
    from tm20.events.sinks import RetrySchedule

    try:
        RetrySchedule.parse(value)
    except ValueError as e:
        raise usage.UsageError(f"{name}: {e}") from None
    return value.strip()


def databaseURL(name: str, value: str) -> str:
    """A C{--database} / C{DATABASE_URL} value, checked: a malformed one is a usage error."""
    url = value.strip()
    if url.startswith("sqlite:"):
        if not url[len("sqlite:") :]:
            raise usage.UsageError(f"{name} sqlite: needs a path, e.g. sqlite:tm20.sqlite3")
        return url
    if url.startswith(("postgresql://", "postgres://")):
        _checkPostgresURL(name, url)
        return url
    raise usage.UsageError(
        f"{name} must be sqlite:PATH or postgresql://..., not {redactURL(url)!r}"
    )


def _checkPostgresURL(name: str, url: str) -> None:
    """A malformed PostgreSQL URL is a usage error, not a server that never starts."""
    from tm20.startup import oneLine

    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as e:
        raise usage.UsageError(f"{name}: malformed PostgreSQL URL: {e}") from None
    try:
        import psycopg2.extensions

        psycopg2.extensions.parse_dsn(url)
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return
    except psycopg2.Error as e:
        raise usage.UsageError(f"{name}: malformed PostgreSQL URL: {oneLine(str(e))}") from None


def redactURL(url: str) -> str:
    """C{url} without a password between C{user:} and C{@}."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        if ":" in credentials:
            return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url
