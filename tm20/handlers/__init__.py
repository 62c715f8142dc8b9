"""Built-in terminal command handlers (published as plugins by C{tm20.plugins.tm20_builtin})."""
