"""Unit tests of the retry policy and of RetryInfo parsing (stdlib unittest; needs the generated package:
PYTHONPATH=python/build after python/generate.py)."""

import unittest

import grpc
from google.protobuf import any_pb2

from sergas_client import RetryPolicy, retry_info
from sergas_client._gen.sergas_rpc import status_pb2


def status_trailer(code, *details):
    st = status_pb2.Status(code=code.value[0], message="m")
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)  # type_url becomes type.googleapis.com/sergas_rpc.RetryInfo: rewrite it as the Go side sends it
        a.type_url = "type.googleapis.com/google.rpc." + d.DESCRIPTOR.name
        st.details.append(a)
    return st.SerializeToString()


class FakeError(grpc.RpcError):
    """What a failed unary call raises: a code and the trailing metadata."""

    def __init__(self, code, trailer=None):
        self._code = code
        self._trailer = trailer

    def code(self):
        return self._code

    def trailing_metadata(self):
        return () if self._trailer is None else (("other-bin", b"x"), ("grpc-status-details-bin", self._trailer))


def retry_delay_err(code, seconds=None, nanos=0):
    if seconds is None:
        return FakeError(code)
    ri = status_pb2.RetryInfo()
    ri.retry_delay.seconds, ri.retry_delay.nanos = seconds, nanos
    return FakeError(code, status_trailer(code, ri))


LOW = lambda a, b: a  # jitter at its lowest
HIGH = lambda a, b: b  # and at its highest


class BackoffTest(unittest.TestCase):
    def test_doubles_up_to_the_cap_jittered_over_the_upper_half(self):
        p = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
        self.assertEqual([p.backoff(n, HIGH) for n in range(1, 7)], [0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
        self.assertEqual([p.backoff(n, LOW) for n in range(1, 5)], [0.05, 0.1, 0.2, 0.4])
        for n in range(5, 200):  # a huge attempt number neither overflows nor passes the cap
            self.assertTrue(0.5 <= p.backoff(n) <= 1.0, n)

    def test_cap_below_initial_is_raised_to_it(self):
        self.assertEqual(RetryPolicy(initial_backoff=2.0, max_backoff=1.0).backoff(3, HIGH), 2.0)

    def test_refuses_unbounded_or_silly_policies(self):
        for kw in ({"max_attempts": 0}, {"initial_backoff": 0}, {"max_elapsed": -1}):
            with self.assertRaises(ValueError):
                RetryPolicy(**kw)


class RetryDelayTest(unittest.TestCase):
    p = RetryPolicy(initial_backoff=0.1, max_backoff=5.0)

    def test_unavailable_waits_the_backoff(self):
        self.assertEqual(self.p.retry_delay(FakeError(grpc.StatusCode.UNAVAILABLE), 3, HIGH), (0.4, True))

    def test_unavailable_waits_a_longer_retry_info(self):
        self.assertEqual(self.p.retry_delay(retry_delay_err(grpc.StatusCode.UNAVAILABLE, 2), 1, HIGH), (2.0, True))
        # A shorter one does not shorten the backoff.
        self.assertEqual(self.p.retry_delay(retry_delay_err(grpc.StatusCode.UNAVAILABLE, 0, 1000), 3, HIGH), (0.4, True))

    def test_resource_exhausted_only_with_retry_info(self):
        self.assertEqual(self.p.retry_delay(FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED), 1), (0.0, False))
        err = retry_delay_err(grpc.StatusCode.RESOURCE_EXHAUSTED, 1, 500_000_000)
        self.assertEqual(self.p.retry_delay(err, 1, LOW), (1.5, True))
        wait, ok = self.p.retry_delay(err, 1, HIGH)  # jitter of at most a tenth
        self.assertTrue(ok)
        self.assertAlmostEqual(wait, 1.65)

    def test_other_codes_are_the_answer(self):
        for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED,
                     grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.INTERNAL):
            self.assertEqual(self.p.retry_delay(retry_delay_err(code, 1), 1), (0.0, False), code)


class RetryInfoTest(unittest.TestCase):
    def test_reads_the_delay(self):
        self.assertEqual(retry_info(retry_delay_err(grpc.StatusCode.RESOURCE_EXHAUSTED, 2, 250_000_000)), 2.25)

    def test_skips_other_details(self):
        other = status_pb2.Status(code=1, message="not a retry info")
        ri = status_pb2.RetryInfo()
        ri.retry_delay.seconds = 3
        err = FakeError(grpc.StatusCode.UNAVAILABLE, status_trailer(grpc.StatusCode.UNAVAILABLE, other, ri))
        self.assertEqual(retry_info(err), 3.0)

    def test_nothing_to_read(self):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
        self.assertIsNone(retry_info(FakeError(code)))  # no trailer
        self.assertIsNone(retry_info(FakeError(code, status_trailer(code))))  # no details
        self.assertIsNone(retry_info(FakeError(code, b"\xff\xff\xff")))  # malformed: ignored, not raised
        self.assertIsNone(retry_info(FakeError(code, status_trailer(code, status_pb2.RetryInfo()))))  # no delay
        self.assertIsNone(retry_info(ValueError("not a call")))

    def test_negative_delay_is_zero(self):
        self.assertEqual(retry_info(retry_delay_err(grpc.StatusCode.RESOURCE_EXHAUSTED, -5)), 0.0)


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, d):
        self.sleeps.append(d)
        self.now += d


class CallTest(unittest.TestCase):
    def run_call(self, policy, errors, timeout=None):
        """Calls a function that raises errors in turn, then answers "ok"; returns (result or the raised
        error, attempts, sleeps, timeouts each attempt got)."""
        clock, errors, timeouts = FakeClock(), list(errors), []

        def fn(timeout):
            timeouts.append(timeout)
            clock.now += 0.01
            if errors:
                raise errors.pop(0)
            return "ok"

        try:
            out = policy.call("/m", fn, timeout=timeout, clock=clock, sleep=clock.sleep)
        except grpc.RpcError as e:
            out = e
        return out, len(timeouts), clock.sleeps, timeouts

    def test_retries_unavailable_until_it_succeeds(self):
        u = FakeError(grpc.StatusCode.UNAVAILABLE)
        out, attempts, sleeps, _ = self.run_call(RetryPolicy(initial_backoff=0.1), [u, u])
        self.assertEqual((out, attempts, len(sleeps)), ("ok", 3, 2))
        self.assertTrue(0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2, sleeps)

    def test_stops_after_max_attempts(self):
        u = FakeError(grpc.StatusCode.UNAVAILABLE)
        out, attempts, _, _ = self.run_call(RetryPolicy(max_attempts=3), [u] * 10)
        self.assertIs(out, u)
        self.assertEqual(attempts, 3)

    def test_no_retry_of_what_is_the_answer(self):
        e = FakeError(grpc.StatusCode.RESOURCE_EXHAUSTED)  # no RetryInfo: a message too large
        out, attempts, _, _ = self.run_call(RetryPolicy(), [e])
        self.assertEqual((out, attempts), (e, 1))

    def test_waits_the_retry_info_of_a_rate_limit(self):
        e = retry_delay_err(grpc.StatusCode.RESOURCE_EXHAUSTED, 2)
        out, attempts, sleeps, _ = self.run_call(RetryPolicy(), [e])
        self.assertEqual((out, attempts), ("ok", 2))
        self.assertTrue(2.0 <= sleeps[0] <= 2.2, sleeps)

    def test_no_wait_beyond_max_elapsed(self):
        e = retry_delay_err(grpc.StatusCode.RESOURCE_EXHAUSTED, 60)
        out, attempts, sleeps, _ = self.run_call(RetryPolicy(max_elapsed=30), [e])
        self.assertEqual((out, attempts, sleeps), (e, 1, []))

    def test_no_wait_beyond_the_deadline_and_each_attempt_gets_what_is_left(self):
        u = FakeError(grpc.StatusCode.UNAVAILABLE)
        out, attempts, sleeps, timeouts = self.run_call(RetryPolicy(initial_backoff=1.0, max_backoff=1.0), [u] * 10, timeout=2.5)
        self.assertIs(out, u)
        self.assertLessEqual(sum(sleeps) + 0.01 * attempts, 2.5)
        self.assertEqual(timeouts[0], 2.5)
        self.assertTrue(all(a > b for a, b in zip(timeouts, timeouts[1:])), timeouts)

    def test_on_retry_is_told(self):
        seen = []
        u = FakeError(grpc.StatusCode.UNAVAILABLE)
        self.run_call(RetryPolicy(on_retry=lambda m, a, e, w: seen.append((m, a, e))), [u])
        self.assertEqual(seen, [("/m", 1, u)])


if __name__ == "__main__":
    unittest.main()
