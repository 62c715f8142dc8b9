-- Operator console accounts and their login sessions (tm20.services.accounts).  The same tables
-- as tm20/store/migrations/sqlite/0011_console.sql.  Times are seconds since the epoch, read
-- from the server's clock (so idle expiry follows an injected clock in tests).  A session is
-- kept only as the sha256 of its cookie value.

CREATE TABLE console_accounts (
    name          text             NOT NULL PRIMARY KEY,
    role          text             NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash text             NOT NULL,
    disabled      boolean          NOT NULL DEFAULT false,
    created_at    double precision NOT NULL,
    updated_at    double precision NOT NULL
);

CREATE TABLE console_sessions (
    token_hash text             NOT NULL PRIMARY KEY,
    account    text             NOT NULL REFERENCES console_accounts (name) ON DELETE CASCADE,
    csrf       text             NOT NULL,
    created_at double precision NOT NULL,
    last_seen  double precision NOT NULL
);

CREATE INDEX console_sessions_account ON console_sessions (account);
