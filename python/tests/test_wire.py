"""The helpers over a real gRPC connection to in-process stand-in services on loopback: retries carry
the same idempotency key, RetryInfo is read from the real trailer, the bearer is sent, and consume acks,
nacks and stops where it is told."""

import threading
import unittest
from concurrent import futures

import grpc
from google.protobuf import any_pb2

import sergas_client
from sergas_client._gen.sergas.audit.v1 import audit_pb2, audit_pb2_grpc
from sergas_client._gen.sergas.webhook.v1 import webhook_pb2, webhook_pb2_grpc
from sergas_client._gen.sergas_rpc import status_pb2


def retry_info_trailer(code, seconds, nanos):
    """grpc-status-details-bin as a Go service's status.WithDetails(&errdetails.RetryInfo{…}) sends it."""
    ri = status_pb2.RetryInfo()
    ri.retry_delay.seconds, ri.retry_delay.nanos = seconds, nanos
    d = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=ri.SerializeToString())
    st = status_pb2.Status(code=code.value[0], message="audit write rate limit exceeded, retry after 50ms", details=[d])
    return (("grpc-status-details-bin", st.SerializeToString()),)


class FlakyAudit(audit_pb2_grpc.AuditServiceServicer):
    """Answers RESOURCE_EXHAUSTED with RetryInfo, then UNAVAILABLE, then stores the event."""

    def __init__(self):
        self.requests, self.auth = [], []

    def RecordEvent(self, request, context):
        self.requests.append(request)
        self.auth.append(dict(context.invocation_metadata()).get("authorization"))
        n = len(self.requests)
        if n == 1:
            context.set_trailing_metadata(retry_info_trailer(grpc.StatusCode.RESOURCE_EXHAUSTED, 0, 50_000_000))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "audit write rate limit exceeded, retry after 50ms")
        if n == 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "stopping")
        return audit_pb2.RecordEventResponse(event=audit_pb2.Event(sequence=7, idempotency_key=request.idempotency_key))

    def RecordEvents(self, request, context):
        self.requests.append(request)
        if len(self.requests) == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "stopping")
        return audit_pb2.RecordEventsResponse(results=[audit_pb2.RecordEventResponse(event=audit_pb2.Event(sequence=i)) for i in range(len(request.events))])


class FakeWebhook(webhook_pb2_grpc.WebhookServiceServicer):
    """Hands out `total` deliveries, at most what each Poll asks for, and records the settlements."""

    def __init__(self, total):
        self.next, self.total = 0, total
        self.polls, self.acked, self.nacked = [], [], []
        self.lock = threading.Lock()

    def Poll(self, request, context):
        with self.lock:
            self.polls.append(request.max_deliveries)
            out = webhook_pb2.PollResponse()
            while self.next < self.total and len(out.deliveries) < request.max_deliveries:
                i = self.next
                self.next += 1
                out.deliveries.add(ack_id="ack-%d" % i, delivery=webhook_pb2.Delivery(id="d-%d" % i), event=webhook_pb2.Event(id="e-%d" % i, payload=b'{"n":%d}' % i))
            return out

    def Ack(self, request, context):
        with self.lock:
            self.acked += list(request.ack_ids)
        return webhook_pb2.AckResponse()

    def Nack(self, request, context):
        with self.lock:
            self.nacked.append((list(request.ack_ids), request.error, request.delay.ToTimedelta().total_seconds() if request.HasField("delay") else None))
        return webhook_pb2.NackResponse()


class WireTest(unittest.TestCase):
    def serve(self, add, servicer):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        add(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self.addCleanup(server.stop, None)
        conn = sergas_client.connect(
            "127.0.0.1:%d" % port, insecure=True, bearer="sgk_test.secret", allow_bearer_over_insecure=True,
            retry=sergas_client.RetryPolicy(initial_backoff=0.01, max_backoff=0.05),
        )
        self.addCleanup(conn.close)
        return conn

    def test_record_event_retries_with_the_same_key(self):
        audit = FlakyAudit()
        conn = self.serve(audit_pb2_grpc.add_AuditServiceServicer_to_server, audit)
        waits = []
        conn.retry.on_retry = lambda method, attempt, err, wait: waits.append((attempt, err.code(), wait))
        resp = sergas_client.record_event(conn, "agent:test", "crm.deal.update", resource="deal/1", actor_type="agent", metadata={"n": 1})
        self.assertEqual(resp.event.sequence, 7)
        self.assertEqual(len(audit.requests), 3)
        keys = {r.idempotency_key for r in audit.requests}
        self.assertEqual(len(keys), 1, keys)
        self.assertTrue(keys.pop())
        self.assertEqual(audit.auth, ["Bearer sgk_test.secret"] * 3)
        # The first wait is the RetryInfo's 50 ms read off the real trailer (plus at most a tenth).
        self.assertEqual(waits[0][:2], (1, grpc.StatusCode.RESOURCE_EXHAUSTED))
        self.assertTrue(0.05 <= waits[0][2] <= 0.055, waits)
        self.assertEqual(waits[1][:2], (2, grpc.StatusCode.UNAVAILABLE))

    def test_record_events_keys_every_event_before_the_first_attempt(self):
        audit = FlakyAudit()
        conn = self.serve(audit_pb2_grpc.add_AuditServiceServicer_to_server, audit)
        reqs = [sergas_client.event_request("agent:test", "a", idempotency_key="mine"), audit_pb2.RecordEventRequest(actor="agent:test", action="b", outcome=1)]
        sergas_client.record_events(conn, reqs)
        self.assertEqual(len(audit.requests), 2)
        first, second = ([e.idempotency_key for e in r.events] for r in audit.requests)
        self.assertEqual(first, second)
        self.assertEqual(first[0], "mine")
        self.assertTrue(first[1])

    def test_retry_info_from_a_real_call(self):
        audit = FlakyAudit()
        conn = self.serve(audit_pb2_grpc.add_AuditServiceServicer_to_server, audit)
        with self.assertRaises(grpc.RpcError) as cm:
            conn.call(conn.audit.RecordEvent, audit_pb2.RecordEventRequest(), retry=False)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(sergas_client.retry_info(cm.exception), 0.05)

    def test_consume_acks_nacks_and_stops_at_max(self):
        wh = FakeWebhook(total=10)
        conn = self.serve(webhook_pb2_grpc.add_WebhookServiceServicer_to_server, wh)
        seen = []

        def handler(leased):
            seen.append(leased.event.id)
            if leased.event.id == "e-1":
                raise sergas_client.Nack("crm down", delay=2.5)
            if leased.event.id == "e-2":
                raise RuntimeError("bug")

        res = sergas_client.consume(conn, "sub", handler, max_deliveries=4, batch=3, deadline=10)
        self.assertEqual(seen, ["e-0", "e-1", "e-2", "e-3"])
        self.assertEqual((res.handled, res.acked, res.nacked, res.refused), (4, 2, 2, 0))
        self.assertEqual(wh.acked, ["ack-0", "ack-3"])
        self.assertEqual(wh.nacked, [(["ack-1"], "crm down", 2.5), (["ack-2"], "bug", None)])
        self.assertEqual(wh.polls, [3, 1])  # never leases more than it still wants

    def test_consume_ends_at_its_deadline_without_deliveries(self):
        wh = FakeWebhook(total=0)
        conn = self.serve(webhook_pb2_grpc.add_WebhookServiceServicer_to_server, wh)
        res = sergas_client.consume(conn, "sub", lambda d: None, deadline=0.5, wait=0.1)
        self.assertEqual(res.handled, 0)
        self.assertGreaterEqual(len(wh.polls), 1)
        with self.assertRaises(ValueError):
            sergas_client.consume(conn, "sub", lambda d: None, deadline=None)


class ConnectTest(unittest.TestCase):
    def test_refuses_a_bearer_over_plaintext_unless_allowed(self):
        with self.assertRaises(ValueError):
            sergas_client.connect("127.0.0.1:1", insecure=True, bearer="k")
        sergas_client.connect("127.0.0.1:1", insecure=True, bearer="k", allow_bearer_over_insecure=True).close()

    def test_refuses_contradictions(self):
        for kw in ({"insecure": True, "ca_file": "x"}, {"cert_file": "c"}, {"key_file": "k"}):
            with self.assertRaises(ValueError, msg=kw):
                sergas_client.connect("127.0.0.1:1", **kw)
        with self.assertRaises(ValueError):
            sergas_client.connect("", insecure=True)

    def test_missing_ca_file_names_the_option_not_a_traceback(self):
        with self.assertRaisesRegex(ValueError, "ca_file"):
            sergas_client.connect("127.0.0.1:1", ca_file="/nonexistent/ca.pem")


class RequestIdTest(unittest.TestCase):
    def event(self, **headers):
        return webhook_pb2.Event(headers=[webhook_pb2.Header(name=k.replace("_", "-"), values=[v]) for k, v in headers.items()])

    def test_trace_id_of_traceparent_then_request_id(self):
        tid = "4bf92f3577b34da6a3ce929d0e0e4736"
        self.assertEqual(sergas_client.request_id_of(self.event(Traceparent="00-%s-00f067aa0ba902b7-01" % tid.upper(), X_Request_Id="r")), tid)
        self.assertEqual(sergas_client.request_id_of(self.event(Traceparent="00-%s-00f067aa0ba902b7-01" % ("0" * 32), X_Request_Id="r")), "r")
        self.assertEqual(sergas_client.request_id_of(self.event(Traceparent="garbage", X_Request_Id="r")), "r")
        self.assertEqual(sergas_client.request_id_of(self.event()), "")


if __name__ == "__main__":
    unittest.main()
