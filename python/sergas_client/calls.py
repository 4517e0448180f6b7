"""The common calls of an agent: an access token, an audit event, and a loop over webhook deliveries."""

import time
import uuid

from google.protobuf import duration_pb2, timestamp_pb2

from ._gen.sergas.audit.v1 import audit_pb2
from ._gen.sergas.token.v1 import token_pb2
from ._gen.sergas.webhook.v1 import webhook_pb2

DEFAULT_TIMEOUT = 30.0  # seconds for one helper call, retries included

_OUTCOMES = {
    "success": audit_pb2.OUTCOME_SUCCESS,
    "failure": audit_pb2.OUTCOME_FAILURE,
    "denied": audit_pb2.OUTCOME_DENIED,
}
_ACTOR_TYPES = {
    None: audit_pb2.ACTOR_TYPE_UNSPECIFIED,
    "agent": audit_pb2.ACTOR_TYPE_AGENT,
    "user": audit_pb2.ACTOR_TYPE_USER,
    "service": audit_pb2.ACTOR_TYPE_SERVICE,
}


def get_access_token(conn, connection_id, provider="zoho", timeout=DEFAULT_TIMEOUT):
    """A usable access token of (provider, connection_id) from the token service (conn must reach it):
    the GetAccessTokenResponse, whose access_token goes in "Authorization: <token_type> <access_token>"
    (Zoho: "Zoho-oauthtoken"). The service refreshes it first when it is about to expire, so ask before
    every use rather than keeping it. Retried: reading a token is safe to repeat."""
    req = token_pb2.GetAccessTokenRequest(provider=provider, connection_id=connection_id)
    return conn.call(conn.token.GetAccessToken, req, timeout=timeout)


def new_idempotency_key():
    """A fresh key, for an event that has no natural one."""
    return "py-" + uuid.uuid4().hex


def event_request(
    actor,
    action,
    resource="",
    outcome="success",
    metadata=None,
    idempotency_key=None,
    occur_time=None,
    actor_type=None,
    session_id="",
    request_id="",
    source_service="",
):
    """A RecordEventRequest. outcome is "success", "failure" or "denied"; actor_type "agent", "user",
    "service" or None; metadata a JSON-like dict (never put secrets in it: the log is kept for good);
    occur_time a datetime or a Timestamp. Without an idempotency_key one is made up, so that the retries
    of this request are deduplicated; give your own, derived from what the event is about (a delivery
    id), and a repeated run of the same work is deduplicated too."""
    if outcome not in _OUTCOMES:
        raise ValueError("outcome must be one of %s" % ", ".join(sorted(_OUTCOMES)))
    if actor_type not in _ACTOR_TYPES:
        raise ValueError("actor_type must be agent, user, service or None")
    req = audit_pb2.RecordEventRequest(
        actor=actor,
        action=action,
        resource=resource,
        outcome=_OUTCOMES[outcome],
        idempotency_key=idempotency_key or new_idempotency_key(),
        actor_type=_ACTOR_TYPES[actor_type],
        session_id=session_id,
        request_id=request_id,
        source_service=source_service,
    )
    if metadata:
        req.metadata.update(metadata)
    if occur_time is not None:
        if isinstance(occur_time, timestamp_pb2.Timestamp):
            req.occur_time.CopyFrom(occur_time)
        else:
            req.occur_time.FromDatetime(occur_time)
    return req


def record_event(conn, actor, action, timeout=DEFAULT_TIMEOUT, call_metadata=None, **fields):
    """Appends one audit event (conn must reach the audit service); fields as for event_request. Returns
    the RecordEventResponse: the stored event (sequence, hash) and whether the key had been used before
    (duplicate). Retried with the same idempotency key, so a retry never appends a second event."""
    req = event_request(actor, action, **fields)
    return conn.call(conn.audit.RecordEvent, req, timeout=timeout, metadata=call_metadata)


def record_events(conn, requests, timeout=DEFAULT_TIMEOUT, call_metadata=None):
    """Appends 1 to 1,000 events (RecordEventRequests, see event_request) in one transaction, all or
    nothing. An event without an idempotency key gets one before the first attempt, so that the retries
    carry the same keys. Returns the RecordEventsResponse."""
    batch = audit_pb2.RecordEventsRequest()
    for r in requests:
        e = batch.events.add()
        e.CopyFrom(r)
        if not e.idempotency_key:
            e.idempotency_key = new_idempotency_key()
    return conn.call(conn.audit.RecordEvents, batch, timeout=timeout, metadata=call_metadata)


class Nack(Exception):
    """Raised by a consume handler to give a delivery back: retried after delay seconds (None: the
    subscription's backoff), or a dead letter once out of attempts. Any other exception nacks too."""

    def __init__(self, reason, delay=None):
        super().__init__(reason)
        self.delay = delay


class ConsumeResult:
    """What consume did: deliveries handled, acked, nacked, and settled too late (lease passed on)."""

    def __init__(self):
        self.handled = self.acked = self.nacked = self.refused = 0

    def __repr__(self):
        return "ConsumeResult(handled=%d, acked=%d, nacked=%d, refused=%d)" % (self.handled, self.acked, self.nacked, self.refused)


def _duration(seconds):
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def consume(
    conn,
    subscription_id,
    handler,
    max_deliveries=None,
    deadline=60.0,
    consumer="",
    batch=10,
    wait=10.0,
    clock=time.monotonic,
):
    """Leases deliveries of a pull subscription with Poll (conn must reach the webhook service) and
    calls handler(leased) for each, a LeasedDelivery with the delivery and its event (payload and headers
    included). When the handler returns, the delivery is acknowledged; when it raises, it is nacked
    (Nack(reason, delay) chooses the delay; another exception's text is the reason).

    Bounded: stops after max_deliveries deliveries (None: no limit) or deadline seconds, whichever comes
    first (a Poll under way ends at most 2 s past the deadline; the deliveries it brings are still handled
    and settled); returns a ConsumeResult. An error that is not retried (PERMISSION_DENIED, NOT_FOUND for
    an unknown subscription, retries spent) is raised. Delivery is at least once: a delivery whose handler ran but whose Ack
    was lost, or whose lease (the subscription's lease_duration) ended first, is handed out again, so make
    the handler's effects idempotent (record_event with a key derived from the delivery id does that).

    Poll asks for no more deliveries than are still wanted, so nothing is left leased when the loop stops,
    unlike a Receive stream, which keeps up to its max_in_flight leased ahead of the consumer. Each Poll
    waits at most wait seconds (the service's limit is 30) for a first delivery.
    """
    if deadline is None or deadline <= 0:
        raise ValueError("deadline must be a positive number of seconds: the loop is bounded")
    result = ConsumeResult()
    end = clock() + deadline
    while max_deliveries is None or result.handled < max_deliveries:
        remaining = end - clock()
        if remaining <= 0:
            break
        want = batch if max_deliveries is None else min(batch, max_deliveries - result.handled)
        poll_wait = max(0.0, min(wait, 30.0, remaining - 1.0))
        req = webhook_pb2.PollRequest(subscription_id=subscription_id, consumer=consumer, max_deliveries=want, wait=_duration(poll_wait))
        # The service answers half a second before the call's deadline, so the call gets a little more
        # than the wait (and the loop ends at most that much after its deadline). A Poll whose answer was
        # lost is safe to repeat: what it leased is handed out again once the lease ends.
        got = conn.call(conn.webhook.Poll, req, timeout=poll_wait + 2.0)
        for leased in got.deliveries:
            result.handled += 1
            try:
                handler(leased)
            except Exception as e:  # the handler's failure is the delivery's, not the loop's
                delay = e.delay if isinstance(e, Nack) else None
                nack = webhook_pb2.NackRequest(ack_ids=[leased.ack_id], error=str(e)[:1000] or type(e).__name__)
                if delay is not None:
                    nack.delay.CopyFrom(_duration(delay))
                resp = conn.call(conn.webhook.Nack, nack, timeout=DEFAULT_TIMEOUT)
                if leased.ack_id not in resp.refused_ack_ids:
                    result.nacked += 1
            else:
                # Repeating an Ack whose answer was lost is safe; the repeat reports the id as refused
                # (already settled), which is then counted as refused although it was delivered.
                resp = conn.call(conn.webhook.Ack, webhook_pb2.AckRequest(ack_ids=[leased.ack_id]), timeout=DEFAULT_TIMEOUT)
                if leased.ack_id not in resp.refused_ack_ids:
                    result.acked += 1
            if leased.ack_id in resp.refused_ack_ids:
                result.refused += 1
    return result


def header(event, name):
    """The first value of a stored webhook event's header name (any case), or ""."""
    for h in event.headers:
        if h.name.lower() == name.lower() and h.values:
            return h.values[0]
    return ""


def request_id_of(event):
    """The id that ties a webhook to the sender's logs and traces: the W3C trace id of its traceparent
    header when it has a valid one, else its X-Request-Id, else ""."""
    parts = header(event, "traceparent").strip().split("-")
    if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
        try:
            int(parts[1], 16)
            return parts[1].lower()
        except ValueError:
            pass
    return header(event, "x-request-id")[:128]
