-- Events stored before the deny list existed kept credential headers (X-Api-Key, X-Auth-Token …) and names
-- that only look like a denied one ("Authorization " with a trailing space): remove them, as the default
-- WEBHOOK_HEADER_DENYLIST would have. The service also hides, on every read, what the configured list denies.
UPDATE events SET headers = COALESCE(
    (SELECT jsonb_agg(x.h ORDER BY x.n) FROM jsonb_array_elements(events.headers) WITH ORDINALITY AS x(h, n)
      WHERE NOT (lower(x.h->>'name') IN ('authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key',
        'x-auth-token', 'x-access-token', 'x-amz-security-token', 'x-csrf-token', 'x-xsrf-token')
                 OR x.h->>'name' !~ '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$')),
    '[]'::jsonb)
WHERE EXISTS (SELECT 1 FROM jsonb_array_elements(events.headers) AS x(h)
               WHERE lower(x.h->>'name') IN ('authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', 'api-key',
        'x-auth-token', 'x-access-token', 'x-amz-security-token', 'x-csrf-token', 'x-xsrf-token')
                  OR x.h->>'name' !~ '^[-!#$%&''*+.^_`|~0-9A-Za-z]+$');
