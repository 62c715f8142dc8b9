"""
What both stores can hold: the value ranges of every stored field that comes from a terminal.

The parser accepts a little more than the databases can hold: an C{int} may have up to 40 digits
and a JSON string may carry C{\\u0000}.  SQLite's C{INTEGER} and PostgreSQL's C{bigint} hold
signed 64-bit integers; PostgreSQL's C{integer} (C{users.admin}, C{credentials.backupnum})
holds 32 bits, where SQLite would take 64; PostgreSQL's C{text} cannot hold a NUL character,
where SQLite's can.  The rules below are the intersection, decided here once, so that both
stores accept and refuse exactly the same values (the stores check them again before writing,
with these same functions) and a value neither store can hold is found while parsing, naming its
field, instead of failing the commit.

JSON columns (a log's C{extra}, a credential's C{record}) hold any JSON value the parser accepts:
they are stored as JSON text, where a large integer is digits and a NUL is C{\\u0000}.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "REGISTER_DEVINFO_TEXT",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "checkLogRecord",
    "checkUserFields",
    "int32Problem",
    "int64Problem",
    "requireStorableLog",
    "requireStorableUser",
    "storableText",
    "textProblem",
]

#: The C{devinfo} keys of a C{reg} stored as text columns of their own (the rest of C{devinfo}
#: is JSON); with C{sn} and C{cpusn}, a C{reg} whose text there holds a NUL is refused.
REGISTER_DEVINFO_TEXT = ("mac", "modelname", "firmware")

#: Signed 64-bit range: SQLite C{INTEGER}, PostgreSQL C{bigint}.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: Signed 32-bit range: PostgreSQL C{integer}.
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def int64Problem(value: int) -> str | None:
    """Why C{value} cannot be stored as a 64-bit integer, or C{None} when it can."""
    if INT64_MIN <= value <= INT64_MAX:
        return None
    return f"out of range: must be between {INT64_MIN} and {INT64_MAX}"


def int32Problem(value: int) -> str | None:
    """Why C{value} cannot be stored as a 32-bit integer, or C{None} when it can."""
    if INT32_MIN <= value <= INT32_MAX:
        return None
    return f"out of range: must be between {INT32_MIN} and {INT32_MAX}"


def textProblem(value: str) -> str | None:
    """Why C{value} cannot be stored as text, or C{None} when it can."""
    if isinstance(value, str) and "\x00" in value:
        return "contains a NUL character (\\u0000), which PostgreSQL text cannot hold"
    return None


def storableText(value: str) -> str:
    """
    C{value} made storable as text in both stores: a NUL or a lone surrogate (from a JSON
    C{\\ud800} escape) is written as its escape; ordinary text is returned as it is.  For the
    texts the server writes about a refused record (its reason, the path of the offending field).
    """
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def requireStorableLog(
    enrollid: int,
    mode: int,
    inout: int,
    event: int,
    verifymode: int | None,
    image: str | None,
) -> None:
    """
    What the stores call before writing a log record: L{checkLogRecord} as an exception.

    @raise ValueError: naming the field that no store can hold.
    """
    problem = checkLogRecord(enrollid, mode, inout, event, verifymode, image)
    if problem is not None:
        raise ValueError(f"log record {problem[0]}: {problem[1]}")


def requireStorableUser(
    enrollid: int, name: str | None, backupnum: int | None, admin: int | None
) -> None:
    """
    What the stores call before writing a user or credential: L{checkUserFields} as an
    exception.

    @raise ValueError: naming the field that no store can hold.
    """
    problem = checkUserFields(enrollid, name, backupnum, admin)
    if problem is not None:
        raise ValueError(f"user {problem[0]}: {problem[1]}")


def _first(problems: Iterable[tuple[str, str | None]]) -> tuple[str, str] | None:
    for field, problem in problems:
        if problem is not None:
            return field, problem
    return None


def checkLogRecord(
    enrollid: int,
    mode: int,
    inout: int,
    event: int,
    verifymode: int | None,
    image: str | None,
) -> tuple[str, str] | None:
    """
    The first field of a log record that no store can hold, as C{(field, problem)}, or C{None}.

    (C{time} is a normalised C{YYYY-MM-DD HH:MM:SS}, C{temp} a finite float, C{extra} JSON:
    always storable.)
    """
    if (
        INT64_MIN <= enrollid <= INT64_MAX
        and INT64_MIN <= mode <= INT64_MAX
        and INT64_MIN <= inout <= INT64_MAX
        and INT64_MIN <= event <= INT64_MAX
        and (verifymode is None or INT64_MIN <= verifymode <= INT64_MAX)
        and (image is None or (type(image) is str and "\x00" not in image))
    ):
        return None  # the usual record: no tuples built
    return _first(
        (
            ("enrollid", int64Problem(enrollid)),
            ("mode", int64Problem(mode)),
            ("inout", int64Problem(inout)),
            ("event", int64Problem(event)),
            ("verifymode", None if verifymode is None else int64Problem(verifymode)),
            ("image", None if image is None else textProblem(image)),
        )
    )


def checkUserFields(
    enrollid: int,
    name: str | None,
    backupnum: int | None,
    admin: int | None,
) -> tuple[str, str] | None:
    """
    The first field of a user credential that no store can hold, as C{(field, problem)}, or
    C{None}.  (C{record} is stored as JSON text: always storable.)
    """
    return _first(
        (
            ("enrollid", int64Problem(enrollid)),
            ("name", None if name is None else textProblem(name)),
            ("backupnum", None if backupnum is None else int32Problem(backupnum)),
            ("admin", None if admin is None else int32Problem(admin)),
        )
    )
