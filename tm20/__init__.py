"""
tm20: a Twisted server for TM20-WIFI / AiFace biometric terminals.

Terminals speak the vendor's "WEBSOCKET+JSON" protocol; see README.md.
"""

__version__ = "0.1.0"
