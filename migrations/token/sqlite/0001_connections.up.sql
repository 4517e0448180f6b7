-- Stored OAuth connections. Times are Unix microseconds (SQLite has no timestamp type); scopes are a
-- JSON array (SQLite has no arrays).
CREATE TABLE connections (
    provider      TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    access_token  BLOB    NOT NULL,
    refresh_token BLOB,
    token_type    TEXT    NOT NULL,
    expire_time   INTEGER NOT NULL,
    scopes        TEXT    NOT NULL DEFAULT '[]',
    api_domain    TEXT    NOT NULL DEFAULT '',
    status        INTEGER NOT NULL,
    create_time   INTEGER NOT NULL,
    update_time   INTEGER NOT NULL,
    PRIMARY KEY (provider, connection_id)
) WITHOUT ROWID;

CREATE INDEX connections_expire_time ON connections (expire_time);
