"""
Every store role written once for both databases, as one mixin (see L{tm20.store._ops}): what
L{tm20.store.sqlite.SQLiteStore} and L{tm20.store.postgres.PostgresStore} share.  Each store
adds its plumbing (L{tm20.store._ops.OpStore}: how an operation runs, "now", the wake-up of
the event log's readers), its lifecycle, the write of the log group commit's batches and the event log.
"""

from __future__ import annotations

from tm20.store._accountstore import AccountStoreMixin
from tm20.store._audit import AuditStoreMixin
from tm20.store._commands import CommandStoreMixin
from tm20.store._logqueries import LogQueryMixin
from tm20.store._personstore import PersonStoreMixin
from tm20.store._quarantine import QuarantineMixin
from tm20.store._terminals import TerminalStoreMixin
from tm20.store._tokens import TokenStoreMixin
from tm20.store._users import UserStoreMixin
from tm20.store._watch import WatchStoreMixin

__all__ = ["StoreRoles"]


class StoreRoles(
    TerminalStoreMixin,
    UserStoreMixin,
    LogQueryMixin,
    QuarantineMixin,
    CommandStoreMixin,
    TokenStoreMixin,
    AuditStoreMixin,
    WatchStoreMixin,
    PersonStoreMixin,
    AccountStoreMixin,
):
    """
    L{tm20.interfaces.ITerminalStore}, L{tm20.interfaces.IUserStore}, the queries and
    quarantine of L{tm20.interfaces.ILogStore}, L{tm20.interfaces.ICommandStore},
    L{tm20.interfaces.ITokenStore}, L{tm20.interfaces.IAuditStore},
    L{tm20.interfaces.IWatchStore}, L{tm20.interfaces.IPersonStore} and
    L{tm20.interfaces.IAccountStore}.
    """
