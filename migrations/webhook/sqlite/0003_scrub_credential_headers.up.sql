-- Events stored before the deny list existed kept credential headers (X-Api-Key, X-Auth-Token …) and names
-- that only look like a denied one ("Authorization " with a trailing space): remove them, as the default
-- WEBHOOK_HEADER_DENYLIST would have. The service also hides, on every read, what the configured list denies.
-- SQLite has no regular expressions: a name that is not an HTTP token is empty or holds a character
-- outside the token set (the GLOB class).
UPDATE events SET headers = (
    SELECT json_group_array(json(x.value)) FROM json_each(events.headers) AS x
     WHERE NOT (lower(json_extract(x.value, '$.name')) IN ('authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key',
        'x-auth-token', 'x-access-token', 'x-amz-security-token', 'x-csrf-token', 'x-xsrf-token')
                OR json_extract(x.value, '$.name') = ''
                OR json_extract(x.value, '$.name') GLOB '*[^!#$%&''*+.^_`|~0-9A-Za-z-]*'))
WHERE EXISTS (SELECT 1 FROM json_each(events.headers) AS x
               WHERE lower(json_extract(x.value, '$.name')) IN ('authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key',
        'x-auth-token', 'x-access-token', 'x-amz-security-token', 'x-csrf-token', 'x-xsrf-token')
                  OR json_extract(x.value, '$.name') = ''
                  OR json_extract(x.value, '$.name') GLOB '*[^!#$%&''*+.^_`|~0-9A-Za-z-]*');
