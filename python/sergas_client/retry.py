"""Retries of calls that are safe to repeat, with the rules of the Go client (client/retry.go).

Only two answers are retried: UNAVAILABLE (the service was not reached, is stopping, or the connection
broke), after an exponential backoff with jitter or the delay its RetryInfo names when longer; and
RESOURCE_EXHAUSTED that carries a google.rpc.RetryInfo (a rate limit: the services say when the budget
refills), after that delay. Every other code is the answer: PERMISSION_DENIED, INVALID_ARGUMENT or a
RESOURCE_EXHAUSTED without RetryInfo (a message over the size limit) would fail the same way again.
"""

import random
import time

import grpc

from ._gen.sergas_rpc import status_pb2

# The trailer in which gRPC carries the google.rpc.Status of an error, details included.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
RETRY_INFO_TYPE = "google.rpc.RetryInfo"


class RetryPolicy:
    """Bounds the retries of one call.

    max_attempts counts the first try (1 turns retries off). initial_backoff is the wait before the first
    retry of UNAVAILABLE, doubling up to max_backoff. No retry starts once max_elapsed seconds have passed
    since the first try, nor one whose wait would outlast the call's deadline. on_retry(method, attempt,
    err, wait), when given, is told of every retry before its wait.
    """

    def __init__(self, max_attempts=5, initial_backoff=0.1, max_backoff=5.0, max_elapsed=30.0, on_retry=None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if initial_backoff <= 0 or max_backoff <= 0 or max_elapsed <= 0:
            raise ValueError("backoffs and max_elapsed must be positive")
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max(max_backoff, initial_backoff)
        self.max_elapsed = max_elapsed
        self.on_retry = on_retry

    def backoff(self, n, rnd=random.uniform):
        """The wait before retry n (1 for the first): min(max_backoff, initial_backoff * 2**(n-1)),
        jittered uniformly over its upper half, so that clients that failed together spread out while the
        wait still grows with every attempt."""
        d = min(self.initial_backoff * (2 ** min(max(n - 1, 0), 62)), self.max_backoff)
        return rnd(d / 2, d)

    def retry_delay(self, err, attempt, rnd=random.uniform):
        """(wait, True) when a call that failed with err on attempt may be repeated after wait seconds;
        (0, False) when err is the answer."""
        code = err.code() if hasattr(err, "code") else None
        info = retry_info(err)
        if code == grpc.StatusCode.UNAVAILABLE:
            wait = self.backoff(attempt, rnd)
            if info is not None and info > wait:
                wait = info
            return wait, True
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and info is not None:
            # A jitter of up to a tenth, so that callers throttled together do not return together.
            return info + rnd(0, info / 10), True
        return 0.0, False

    def call(self, method, fn, timeout=None, clock=time.monotonic, sleep=time.sleep):
        """Runs fn(timeout=remaining) until it succeeds, fails in a way that is not retried, or the
        attempts, max_elapsed or timeout (seconds for the whole call, retries included) run out; raises
        the last error. fn must send the same request every time (an idempotency key inside it stays
        the same across attempts)."""
        start = clock()
        deadline = None if timeout is None else start + timeout
        attempt = 1
        while True:
            remaining = None if deadline is None else max(deadline - clock(), 0.0)
            try:
                return fn(timeout=remaining)
            except grpc.RpcError as err:
                if attempt >= self.max_attempts:
                    raise
                wait, ok = self.retry_delay(err, attempt)
                if not ok or clock() - start + wait > self.max_elapsed:
                    raise
                if deadline is not None and deadline - clock() < wait:
                    raise  # the next attempt could not finish in time: the answer we have is better
                if self.on_retry is not None:
                    self.on_retry(method, attempt, err, wait)
                sleep(wait)
                attempt += 1


def _status_details(err):
    """The google.rpc.Status an error carries in its trailer, or None."""
    trailers = None
    try:
        trailers = err.trailing_metadata()
    except Exception:  # not a grpc.Call (an error raised before the call, or a test double)
        return None
    for key, value in trailers or ():
        if key == STATUS_DETAILS_KEY:
            st = status_pb2.Status()
            try:
                st.ParseFromString(value)
            except Exception:  # a malformed trailer is no reason to fail differently
                return None
            return st
    return None


def retry_info(err):
    """The delay in seconds of the google.rpc.RetryInfo detail err carries, or None."""
    st = _status_details(err)
    if st is None:
        return None
    for any_msg in st.details:
        # type_url is "type.googleapis.com/google.rpc.RetryInfo"; only the part after the last '/' names it.
        if any_msg.type_url.rsplit("/", 1)[-1] != RETRY_INFO_TYPE:
            continue
        ri = status_pb2.RetryInfo()
        try:
            ri.ParseFromString(any_msg.value)
        except Exception:
            return None
        if not ri.HasField("retry_delay"):
            return None
        return max(ri.retry_delay.seconds + ri.retry_delay.nanos / 1e9, 0.0)
    return None
