-- Operator console accounts and their login sessions (tm20.services.accounts).  The same tables
-- as tm20/store/migrations/postgres/0011_console.sql.  Times are seconds since the epoch, read
-- from the server's clock (so idle expiry follows an injected clock in tests).  A session is
-- kept only as the sha256 of its cookie value.

CREATE TABLE console_accounts (
    name          TEXT    NOT NULL PRIMARY KEY,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL
);

CREATE TABLE console_sessions (
    token_hash TEXT NOT NULL PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES console_accounts (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen  REAL NOT NULL
);

CREATE INDEX console_sessions_account ON console_sessions (account);
