#!/usr/bin/python3
"""An example agent loop: for each webhook delivery of a subscription, get a Zoho access token, (do the
work), record what it did in the audit log, and acknowledge the delivery.

    /usr/bin/python3 python/generate.py                       # builds python/build/sergas_client
    SERGAS_API_KEY=sgk_… PYTHONPATH=python/build /usr/bin/python3 python/examples/agent.py \\
        --token localhost:50051 --audit localhost:50052 --webhook localhost:50053 --insecure \\
        --connection org-1 --subscription <id> --max-deliveries 10 --deadline 60

The API key is read from the environment (SERGAS_API_KEY), never from the command line, where other
users of the machine could read it. The key needs token:read, audit:write and webhook:consume. Over mTLS
(--ca-file, --cert-file, --key-file) the certificate's identity can stand in for the key
(AUTH_TLS_IDENTITIES maps it to those scopes). Retries are printed as they happen.

Bounded: it stops after --max-deliveries deliveries or --deadline seconds, whichever comes first. It
prints one JSON line per delivery, and a summary; never the access token, only a fingerprint of it.
"""

import argparse
import hashlib
import json
import os
import sys

import grpc

import sergas_client


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Sergas example agent: token -> webhook -> audit -> ack")
    ap.add_argument("--token", required=True, help="token service address (host:port)")
    ap.add_argument("--audit", required=True, help="audit service address")
    ap.add_argument("--webhook", required=True, help="webhook service address")
    ap.add_argument("--ca-file", help="PEM CA the services' certificates chain to (default: system roots)")
    ap.add_argument("--cert-file", help="client certificate for mTLS (PEM)")
    ap.add_argument("--key-file", help="its private key (PEM)")
    ap.add_argument("--server-name", help="name the services' certificates carry, if not the address's host")
    ap.add_argument("--insecure", action="store_true", help="no TLS (a development stack on loopback, a mesh sidecar)")
    ap.add_argument("--api-key-env", default="SERGAS_API_KEY", help="environment variable holding the bearer credential")
    ap.add_argument("--provider", default="zoho")
    ap.add_argument("--connection", required=True, help="token-service connection id (e.g. the Zoho org)")
    ap.add_argument("--subscription", required=True, help="pull subscription id to consume")
    ap.add_argument("--consumer", default="python-agent", help="consumer name in leases and audit session ids")
    ap.add_argument("--actor", default="agent:python-example", help="audit actor")
    ap.add_argument("--max-deliveries", type=int, default=10)
    ap.add_argument("--deadline", type=float, default=60.0, help="seconds before the loop stops")
    return ap.parse_args(argv)


def fingerprint(secret):
    """Enough of a hash to tell two tokens apart in a log, not enough to use one."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def main(argv=None):
    args = parse_args(argv)
    bearer = os.environ.get(args.api_key_env, "")
    if not bearer and not args.cert_file:
        sys.exit("agent: %s is empty: set it to an API key with token:read, audit:write and webhook:consume, "
                 "or give a client certificate whose identity has them" % args.api_key_env)
    out = sys.stdout

    def log(**fields):
        out.write(json.dumps(fields, sort_keys=True) + "\n")
        out.flush()

    def on_retry(method, attempt, err, wait):
        log(retry=method, attempt=attempt, code=err.code().name, wait=round(wait, 3))

    common = dict(
        ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file, server_name=args.server_name,
        bearer=bearer or None, insecure=args.insecure, allow_bearer_over_insecure=args.insecure,
        retry=sergas_client.RetryPolicy(on_retry=on_retry),
    )

    with sergas_client.connect(args.token, **common) as tokens, \
            sergas_client.connect(args.audit, **common) as audit, \
            sergas_client.connect(args.webhook, **common) as webhook:

        def handle(leased):
            try:
                work(leased)
            except Exception as e:  # consume nacks it; say so first
                log(delivery=leased.delivery.id, event=leased.event.id, error="%s: %s" % (type(e).__name__, e))
                raise

        def work(leased):
            event, delivery = leased.event, leased.delivery
            # Ask for the token before every use: the service refreshes it when it is about to expire.
            tok = sergas_client.get_access_token(tokens, args.connection, provider=args.provider)
            # Here a real agent would call Zoho CRM at tok.api_domain with
            # "Authorization: Zoho-oauthtoken <tok.access_token>" about event.record_ids.
            request_id = sergas_client.request_id_of(event)
            resp = sergas_client.record_event(
                audit,
                args.actor,
                "agent.webhook.handle",
                resource="webhook/%s/%s" % (event.source, event.id),
                outcome="success",
                actor_type="agent",
                session_id=args.consumer,
                request_id=request_id,
                # Derived from the delivery, and the content kept stable (the event's receive time, no
                # attempt count): a delivery handed out again after a lost Ack is recorded once.
                idempotency_key="webhook-delivery/" + delivery.id,
                occur_time=event.receive_time,
                metadata={
                    "delivery_id": delivery.id,
                    "event_id": event.id,
                    "subscription_id": delivery.subscription_id,
                    "source": event.source,
                    "module": event.module,
                    "operation": event.operation,
                    "record_ids": list(event.record_ids),
                    "api_domain": tok.api_domain,
                },
            )
            log(
                delivery=delivery.id, event=event.id, request_id=request_id, token_sha256=fingerprint(tok.access_token),
                audit_event=resp.event.id, audit_sequence=resp.event.sequence, duplicate=resp.duplicate,
            )

        try:
            result = sergas_client.consume(
                webhook, args.subscription, handle, max_deliveries=args.max_deliveries, deadline=args.deadline, consumer=args.consumer,
            )
        except grpc.RpcError as e:  # the webhook service refused (a missing scope, no such subscription…)
            log(error=e.code().name, detail=e.details())
            return 2
    log(summary=True, handled=result.handled, acked=result.acked, nacked=result.nacked, refused=result.refused)
    return 0 if result.nacked == 0 and result.refused == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
