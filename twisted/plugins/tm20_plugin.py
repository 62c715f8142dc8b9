"""C{twistd tm20}: a tiny, import-light plugin; the work is in L{tm20.tap}."""

from twisted.application.service import ServiceMaker

TM20 = ServiceMaker(
    "tm20",
    "tm20.tap",
    "TM20-WIFI / AiFace terminal server (WebSocket+JSON) with REST API.",
    "tm20",
)
