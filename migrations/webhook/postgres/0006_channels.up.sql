-- Zoho CRM notification channels the service enabled and keeps alive. The id is Zoho's channel id, text
-- of 1-18 ASCII digits compared as text: COLLATE "C" orders it by bytes, as SQLite's BINARY does, whatever
-- the database's collation. events is a JSON array of strings (jsonb here, TEXT on SQLite); sealed_token
-- is the channel token sealed by the service's keyring (never the token itself); renew_time is NULL
-- before the first renewal. version grows by one with every change (optimistic concurrency: an update
-- names the version it read). The CHECKs refuse what no code path should write, so a bug or a hand edit
-- cannot leave a row the service would misread.
CREATE TABLE channels (
    id                           text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9]{1,18}$'),
    source                       text        NOT NULL,
    connection_id                text        NOT NULL,
    events                       jsonb       NOT NULL CHECK (jsonb_typeof(events) = 'array'),
    notify_url                   text        NOT NULL,
    return_affected_field_values boolean     NOT NULL,
    sealed_token                 bytea       NOT NULL CHECK (length(sealed_token) > 0),
    state                        smallint    NOT NULL CHECK (state BETWEEN 1 AND 4),
    expire_time                  timestamptz NOT NULL,
    create_time                  timestamptz NOT NULL,
    update_time                  timestamptz NOT NULL,
    renew_time                   timestamptz,
    failed_renewals              integer     NOT NULL CHECK (failed_renewals >= 0),
    last_error                   text        NOT NULL,
    version                      bigint      NOT NULL CHECK (version >= 1)
);

-- ChannelList pages by id: unfiltered it reads the primary key in id order; filtered by source, or by
-- state, it reads the index on that column and id (with both filters, either one, skipping rows).
CREATE INDEX channels_source_id ON channels (source, id);
CREATE INDEX channels_state_id ON channels (state, id);
-- ChannelsDue: channels not disabled, soonest expiry first. Partial, so disabled channels cost nothing;
-- the query repeats "state <> 4" literally so that the planner can prove it uses this index.
CREATE INDEX channels_due ON channels (expire_time, id) WHERE state <> 4;
