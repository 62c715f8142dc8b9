"""Business rules: registration, log ingest, commands.  No sockets, no SQL."""
