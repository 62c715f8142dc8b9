"""
Drop-in command handlers.

Every module in a C{tm20/plugins/} folder anywhere on the Python path is searched for objects
providing L{tm20.interfaces.ICommandHandler} (and C{twisted.plugin.IPlugin}); see README.md,
"Writing a handler plugin".
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
