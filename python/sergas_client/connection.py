"""connect(): a channel to one Sergas service with TLS or mTLS, a bearer credential and a retry policy."""

import collections

import grpc

from ._gen.sergas.audit.v1 import audit_pb2_grpc
from ._gen.sergas.token.v1 import token_pb2_grpc
from ._gen.sergas.webhook.v1 import webhook_pb2_grpc
from .retry import RetryPolicy

# Message limits matching the services' defaults (GRPC_MAX_RECV_MSG_BYTES 4 MiB, GRPC_MAX_SEND_MSG_BYTES
# 16 MiB): a request the service would refuse fails here before it is sent, and every answer is accepted.
MAX_SEND_BYTES = 4 << 20
MAX_RECV_BYTES = 16 << 20

_OPTIONS = [
    ("grpc.max_send_message_length", MAX_SEND_BYTES),
    ("grpc.max_receive_message_length", MAX_RECV_BYTES),
    # The services refuse clients that ping more often than every 10 s (ENHANCE_YOUR_CALM), so pings go
    # every 30 s and only while a call is open.
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.keepalive_permit_without_calls", 0),
    # gRPC's own retries (from a service config) would retry behind our back with other rules.
    ("grpc.enable_retries", 0),
    ("grpc.primary_user_agent", "sergas-python-client"),
    # Spread calls over every address the name resolves to (a dns:/// name of a headless Kubernetes
    # Service lists each pod); pick_first would send all of them to one pod.
    ("grpc.lb_policy_name", "round_robin"),
]


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _BearerOverInsecure(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds "authorization: Bearer …" to every call of a plaintext channel, where gRPC refuses call
    credentials. Used only when the caller allowed it (a mesh sidecar on loopback, a development stack)."""

    def __init__(self, token):
        self._md = ("authorization", "Bearer " + token)

    def _details(self, d):
        md = list(d.metadata or ()) + [self._md]
        return _CallDetails(d.method, d.timeout, md, d.credentials, getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError("%s: %s" % (what, e.strerror)) from None


class Connection:
    """A channel to one service with its generated stubs (token, audit, webhook: use the one the address
    serves) and the retry policy the helpers apply. Close it, or use it as a context manager."""

    def __init__(self, channel, retry):
        self.channel = channel
        self.retry = retry
        self.token = token_pb2_grpc.TokenServiceStub(channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(channel)
        self.webhook = webhook_pb2_grpc.WebhookServiceStub(channel)

    def call(self, method, request, timeout=None, metadata=None, retry=True):
        """Calls the stub method (e.g. conn.token.GetAccessToken) with request, repeating it under the
        retry policy when retry is true (only for calls safe to repeat). timeout bounds the whole call,
        retries included, in seconds."""
        name = getattr(method, "_method", b"")
        name = name.decode() if isinstance(name, bytes) else str(name)
        fn = lambda timeout: method(request, timeout=timeout, metadata=metadata)
        if not retry:
            return fn(timeout)
        return self.retry.call(name, fn, timeout=timeout)

    def close(self):
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def connect(
    address,
    *,
    ca_file=None,
    cert_file=None,
    key_file=None,
    server_name=None,
    bearer=None,
    insecure=False,
    allow_bearer_over_insecure=False,
    retry=None,
    options=(),
):
    """Opens a channel to address (host:port or any gRPC target, e.g. "dns:///token.sergas:50051").

    TLS is the default: the system's roots, or ca_file (PEM) instead; cert_file and key_file add a client
    certificate (mTLS); server_name overrides the name the service's certificate must carry. bearer (an
    API key sgk_<id>.<secret> or a JWT) is sent as "authorization: Bearer …" on every call. insecure=True
    dials without TLS, only when asked: for a mesh sidecar that encrypts on the client's behalf or a
    development stack on loopback; a bearer then needs allow_bearer_over_insecure=True too, because anyone
    on the path would read it. retry is a RetryPolicy (the default: 5 attempts within 30 s).
    """
    if not address:
        raise ValueError("address is empty")
    if insecure and bearer and not allow_bearer_over_insecure:
        raise ValueError(
            "refusing to send a bearer credential without TLS; use TLS, or allow_bearer_over_insecure for a sidecar on loopback"
        )
    if insecure and (ca_file or cert_file or key_file):
        raise ValueError("insecure contradicts ca_file, cert_file and key_file")
    if bool(cert_file) != bool(key_file):
        raise ValueError("cert_file and key_file must be given together")
    opts = list(_OPTIONS) + list(options)
    if insecure:
        channel = grpc.insecure_channel(address, options=opts)
        if bearer:
            channel = grpc.intercept_channel(channel, _BearerOverInsecure(bearer))
    else:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file, "ca_file") if ca_file else None,
            private_key=_read(key_file, "key_file") if key_file else None,
            certificate_chain=_read(cert_file, "cert_file") if cert_file else None,
        )
        if bearer:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(bearer))
        if server_name:
            opts.append(("grpc.ssl_target_name_override", server_name))
        channel = grpc.secure_channel(address, creds, options=opts)
    return Connection(channel, retry or RetryPolicy())
