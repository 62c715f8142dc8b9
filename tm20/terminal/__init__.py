"""The terminal door: WebSocket protocol, sessions by C{sn}, keep-alive, command channel."""
