"""
Access decisions at the door: who may pass which terminal, when.

Pure: the values (L{tm20.access.model}) and the rule evaluation over an in-memory snapshot
(L{tm20.access.rules}); no I/O, no reactor.  The service that keeps the snapshot, records each
decision and answers terminals is L{tm20.services.access}.
"""
