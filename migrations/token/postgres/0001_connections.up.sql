-- Stored OAuth connections.
CREATE TABLE connections (
    provider      text        NOT NULL,
    connection_id text        NOT NULL,
    access_token  bytea       NOT NULL,
    refresh_token bytea,
    token_type    text        NOT NULL,
    expire_time   timestamptz NOT NULL,
    scopes        text[]      NOT NULL DEFAULT '{}',
    api_domain    text        NOT NULL DEFAULT '',
    status        smallint    NOT NULL,
    create_time   timestamptz NOT NULL,
    update_time   timestamptz NOT NULL,
    PRIMARY KEY (provider, connection_id)
);

CREATE INDEX connections_expire_time ON connections (expire_time);
