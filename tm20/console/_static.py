"""
The console's static files (one stylesheet, a few scripts), read once from the package and
served from memory with their type; nothing else under C{/admin/static/} exists.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

__all__ = ["StaticFiles"]

_TYPES = {".css": b"text/css; charset=utf-8", ".js": b"text/javascript; charset=utf-8"}


class StaticFiles:
    """The files of C{tm20/console/static}, by name."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, bytes]] = {}
        for entry in files("tm20.console").joinpath("static").iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in _TYPES:
                self.files[entry.name] = (_TYPES[suffix], entry.read_bytes())

    def serve(self, request: Any, name: str) -> bytes:
        found = self.files.get(name)
        if found is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found"
        contentType, body = found
        request.setHeader(b"content-type", contentType)
        request.setHeader(b"cache-control", b"max-age=300")
        return body
