"""
The REST API, mounted at C{/api} on the same port as the terminals (see C{docs/api.md}).

L{buildApiResource} is what L{tm20.service.buildServer} mounts.  Klein (which installs the
global reactor when imported) is only imported when it is called.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource

__all__ = ["buildApiResource"]


def buildApiResource(context: Any, queue: Any = None, pulls: Any = None) -> IResource:
    """
    The C{/api} resource for a server's L{tm20.context.ServerContext}, on the server's durable
    command queue and pull service (built here, the queue delivering after each registration,
    when not given).
    """
    from tm20.api._app import TM20Api

    return TM20Api(context, queue=queue, pulls=pulls).resource()
