"""sergas_client: the Python client of Sergas Core for agents.

Generated stubs (sergas_client._gen, built by python/generate.py) plus thin helpers that do what the Go
client (client/) does: connect with TLS, mTLS or (when asked) plaintext and a bearer credential, retry
only what is safe to retry, and wrap the common calls.
"""

from .calls import (
    ConsumeResult,
    Nack,
    consume,
    event_request,
    get_access_token,
    header,
    new_idempotency_key,
    record_event,
    record_events,
    request_id_of,
)
from .connection import Connection, connect
from .retry import RetryPolicy, retry_info

__all__ = [
    "Connection",
    "ConsumeResult",
    "Nack",
    "RetryPolicy",
    "connect",
    "consume",
    "event_request",
    "get_access_token",
    "header",
    "new_idempotency_key",
    "record_event",
    "record_events",
    "request_id_of",
    "retry_info",
]
