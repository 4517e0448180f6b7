-- Zoho CRM notification channels the service enabled and keeps alive. The id is Zoho's channel id, text
-- of 1-18 ASCII digits compared as text (BINARY, byte order, as PostgreSQL's COLLATE "C"); WITHOUT ROWID
-- keeps the rows in id order, the order ChannelList pages in. events is a JSON array of strings;
-- sealed_token is the channel token sealed by the service's keyring (never the token itself). Times are
-- Unix microseconds; renew_time is NULL before the first renewal. version grows by one with every change
-- (optimistic concurrency: an update names the version it read). The CHECKs refuse what no code path
-- should write, so a bug or a hand edit cannot leave a row the service would misread.
CREATE TABLE channels (
    id                           TEXT    NOT NULL PRIMARY KEY
        CHECK (typeof(id) = 'text' AND length(id) BETWEEN 1 AND 18 AND id NOT GLOB '*[^0-9]*'),
    source                       TEXT    NOT NULL,
    connection_id                TEXT    NOT NULL,
    events                       TEXT    NOT NULL CHECK (json_valid(events) AND json_type(events) = 'array'),
    notify_url                   TEXT    NOT NULL,
    return_affected_field_values INTEGER NOT NULL CHECK (return_affected_field_values IN (0, 1)),
    sealed_token                 BLOB    NOT NULL CHECK (typeof(sealed_token) = 'blob' AND length(sealed_token) > 0),
    state                        INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),
    expire_time                  INTEGER NOT NULL CHECK (typeof(expire_time) = 'integer'),
    create_time                  INTEGER NOT NULL CHECK (typeof(create_time) = 'integer'),
    update_time                  INTEGER NOT NULL CHECK (typeof(update_time) = 'integer'),
    renew_time                   INTEGER CHECK (renew_time IS NULL OR typeof(renew_time) = 'integer'),
    failed_renewals              INTEGER NOT NULL CHECK (failed_renewals >= 0),
    last_error                   TEXT    NOT NULL,
    version                      INTEGER NOT NULL CHECK (version >= 1)
) WITHOUT ROWID;

-- ChannelList pages by id: unfiltered it reads the table itself in id order; filtered by source, or by
-- state, it reads the index on that column and id (with both filters, either one, skipping rows).
CREATE INDEX channels_source_id ON channels (source, id);
CREATE INDEX channels_state_id ON channels (state, id);
-- ChannelsDue: channels not disabled, soonest expiry first. Partial, so disabled channels cost nothing;
-- the query repeats "state <> 4" literally (SQLite uses a partial index only when the WHERE names it).
CREATE INDEX channels_due ON channels (expire_time, id) WHERE state <> 4;
