#!/usr/bin/env python3
"""Writes alerts_test.yaml beside it, the promtool unit tests of alerts.yaml.

Edit the cases here and run `python3 deploy/prometheus/gen_alerts_test.py` (PyYAML: Debian's
python3-yaml). promtool compares every annotation of a firing alert, so the expected annotations are
rendered here from the rules' own templates ($labels.x substituted, $value given by the case): a changed
runbook needs only a re-run, while a changed template or expression is still checked by promtool.
"""
import os
import re

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
rules = {}
for g in yaml.safe_load(open(ROOT + "/deploy/prometheus/alerts.yaml"))["groups"]:
    for r in g["rules"]:
        rules[r["alert"]] = r


def render(tmpl, labels, value):
    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels[expr[len("$labels."):]]
        if expr.startswith("$value"):
            if value is None:
                raise SystemExit("template needs $value: " + tmpl)
            return value
        raise SystemExit("unknown template " + expr)
    return re.sub(r"\{\{(.*?)\}\}", sub, tmpl)


def alert(name, labels, value=None):
    r = rules[name]
    lab = dict(labels)
    lab.update(r["labels"])
    ann = {k: render(v, lab, value) for k, v in r["annotations"].items()}
    return {"exp_labels": lab, "exp_annotations": ann}


tests = []


def case(comment, series, evals):
    """evals: list of (time, alertname, [alerts])."""
    tests.append({
        "name": comment,
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": exp} for t, a, exp in evals],
    })


# --- token
J = {"job": "sergas-token"}
case("needs re-authorisation: fires once per job (two replicas report the same count), after 5 minutes", [
    ('token_connections_needing_reauthorization{job="sergas-token",instance="t1"}', "0x10 2x20"),
    ('token_connections_needing_reauthorization{job="sergas-token",instance="t2"}', "0x10 2x20"),
], [
    ("10m", "SergasTokenConnectionsNeedReauthorization", []),
    ("13m", "SergasTokenConnectionsNeedReauthorization", []),
    ("17m", "SergasTokenConnectionsNeedReauthorization", [alert("SergasTokenConnectionsNeedReauthorization", J, "2")]),
])
case("refresh failures: most refreshes of zoho fail; one failure of crm does not fire", [
    ('token_refreshes_total{job="sergas-token",instance="t1",provider="zoho",result="success"}', "0+1x60"),
    ('token_refreshes_total{job="sergas-token",instance="t1",provider="zoho",result="transient"}', "0x20 3+3x40"),
    ('token_refreshes_total{job="sergas-token",instance="t1",provider="crm",result="success"}', "0x60"),
    ('token_refreshes_total{job="sergas-token",instance="t1",provider="crm",result="transient"}', "0x30 1x30"),
], [
    ("20m", "SergasTokenRefreshFailing", []),
    ("45m", "SergasTokenRefreshFailing", [alert("SergasTokenRefreshFailing", dict(J, provider="zoho"))]),
])
case("refreshed tokens not stored: fires on the first, clears 15 minutes later", [
    ('token_refreshes_total{job="sergas-token",instance="t1",provider="zoho",result="store_failed"}', "0x10 1x30"),
], [
    ("5m", "SergasTokenRefreshNotStored", []),
    ("12m", "SergasTokenRefreshNotStored", [alert("SergasTokenRefreshNotStored", dict(J, provider="zoho"))]),
    ("30m", "SergasTokenRefreshNotStored", []),
])

# --- audit
J = {"job": "sergas-audit"}
case("verification failure: fires at once on a changed chain, for an hour; valid verifications never", [
    ('audit_chain_verifications_total{job="sergas-audit",instance="a1",result="valid"}', "0+1x120"),
    ('audit_chain_verifications_total{job="sergas-audit",instance="a1",result="changed"}', "0x30 1x100"),
], [
    ("20m", "SergasAuditChainVerificationFailed", []),
    ("35m", "SergasAuditChainVerificationFailed", [alert("SergasAuditChainVerificationFailed", dict(J, result="changed"))]),
    ("100m", "SergasAuditChainVerificationFailed", []),
])
case("checkpoint overdue: an hour-old checkpoint is fine while nothing was appended after it", [
    ('audit_chain_head_sequence{job="sergas-audit",instance="a1"}', "10x60 20x120"),
    ('audit_last_checkpoint_sequence{job="sergas-audit",instance="a1"}', "10x180"),
    ('audit_last_checkpoint_timestamp_seconds{job="sergas-audit",instance="a1"}', "0x180"),
], [
    ("50m", "SergasAuditCheckpointOverdue", []),
    ("70m", "SergasAuditCheckpointOverdue", []),
    ("90m", "SergasAuditCheckpointOverdue", [alert("SergasAuditCheckpointOverdue", J)]),
])
case("checkpoint overdue: events and never a checkpoint", [
    ('audit_chain_head_sequence{job="sergas-audit",instance="a1"}', "0x10 5x100"),
], [
    ("5m", "SergasAuditCheckpointOverdue", []),
    ("30m", "SergasAuditCheckpointOverdue", [alert("SergasAuditCheckpointOverdue", J)]),
])

case("audit outbox: a parked event fires (its counter first appears at 1) for an hour; none parked does not", [
    ('audit_outbox_parked_total{job="sergas-token",instance="t1",service="token",code="InvalidArgument"}', "_x10 1x80"),
    ('audit_outbox_parked_total{job="sergas-webhook",instance="w1",service="webhook",code="OutOfRange"}', "0x90"),
], [
    ("5m", "SergasAuditOutboxParked", []),
    ("15m", "SergasAuditOutboxParked", [alert("SergasAuditOutboxParked", {"job": "sergas-token", "service": "token", "code": "InvalidArgument"})]),
    ("80m", "SergasAuditOutboxParked", []),
])

# --- webhook
J = {"job": "sergas-webhook"}
case("backlog age: warning after 15 minutes, critical after an hour; an empty subscription never", [
    ('webhook_subscription_oldest_pending_seconds{job="sergas-webhook",instance="w1",subscription="s1"}', "0+60x120"),
    ('webhook_subscription_oldest_pending_seconds{job="sergas-webhook",instance="w1",subscription="s2"}', "0x120"),
], [
    ("10m", "SergasWebhookBacklogOld", []),
    ("25m", "SergasWebhookBacklogOld", [alert("SergasWebhookBacklogOld", dict(J, subscription="s1"), "25m 0s")]),
    ("25m", "SergasWebhookBacklogStuck", []),
    ("70m", "SergasWebhookBacklogOld", [alert("SergasWebhookBacklogOld", dict(J, subscription="s1"), "1h 10m 0s")]),
    ("70m", "SergasWebhookBacklogStuck", [alert("SergasWebhookBacklogStuck", dict(J, subscription="s1"), "1h 10m 0s")]),
])
case("dead letters: fires for a counter that grew and for one that first appeared at 1; clears after 15 minutes", [
    ('webhook_deliveries_dead_lettered_total{job="sergas-webhook",instance="w1",subscription="s1"}', "0x20 1x70"),
    ('webhook_deliveries_dead_lettered_total{job="sergas-webhook",instance="w1",subscription="s2"}', "_x40 1x40"),
], [
    ("20m", "SergasWebhookDeadLetters", []),
    ("35m", "SergasWebhookDeadLetters", [alert("SergasWebhookDeadLetters", dict(J, subscription="s1"))]),
    ("45m", "SergasWebhookDeadLetters", [alert("SergasWebhookDeadLetters", dict(J, subscription="s2"))]),
    ("65m", "SergasWebhookDeadLetters", []),
])
case("ingest: backlog_full and store_error fire; refused signatures do not", [
    ('webhook_ingest_refused_total{job="sergas-webhook",instance="w1",source="zoho",reason="backlog_full"}', "0x10 0+5x20"),
    ('webhook_ingest_refused_total{job="sergas-webhook",instance="w1",source="zoho",reason="store_error"}', "0x20 0+1x20"),
    ('webhook_ingest_refused_total{job="sergas-webhook",instance="w1",source="zoho",reason="bad_signature"}', "0+10x40"),
], [
    ("5m", "SergasWebhookIngestBacklogFull", []),
    ("15m", "SergasWebhookIngestBacklogFull", [alert("SergasWebhookIngestBacklogFull", dict(J, source="zoho"))]),
    ("15m", "SergasWebhookIngestStoreErrors", []),
    ("30m", "SergasWebhookIngestStoreErrors", [alert("SergasWebhookIngestStoreErrors", dict(J, source="zoho", reason="store_error"))]),
])
case("zoho channel: expiring within 6 hours fires after 10 minutes; expired fires at once", [
    ('webhook_zoho_channel_next_expiry_seconds{job="sergas-webhook",instance="w1"}', "22200-60x60"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="active"}', "1x60"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="expired"}', "0x10 1x50"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="disabled"}', "3x60"),
], [
    ("5m", "SergasZohoChannelExpiringSoon", []),
    ("25m", "SergasZohoChannelExpiringSoon", [alert("SergasZohoChannelExpiringSoon", J, "5h 45m 0s")]),
    ("5m", "SergasZohoChannelExpired", []),
    ("12m", "SergasZohoChannelExpired", [alert("SergasZohoChannelExpired", J, "1")]),
])
case("zoho channel: no channel (expiry 0) and only disabled channels never fire", [
    ('webhook_zoho_channel_next_expiry_seconds{job="sergas-webhook",instance="w1"}', "0x60"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="active"}', "0x60"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="disabled"}', "2x60"),
    ('webhook_zoho_channels{job="sergas-webhook",instance="w1",state="expired"}', "0x60"),
], [
    ("30m", "SergasZohoChannelExpiringSoon", []),
    ("30m", "SergasZohoChannelExpired", []),
])
case("sources file: a failed reload fires, successful reloads do not", [
    ('webhook_sources_reload_errors_total{job="sergas-webhook",instance="w1"}', "0x10 1x20"),
    ('webhook_sources_reloads_total{job="sergas-webhook",instance="w1"}', "0+1x30"),
], [
    ("5m", "SergasWebhookSourcesReloadFailing", []),
    ("12m", "SergasWebhookSourcesReloadFailing", [alert("SergasWebhookSourcesReloadFailing", {"job": "sergas-webhook", "instance": "w1"})]),
])

case("retry storm: retries at half the acks fire; at a tenth they do not", [
    ('webhook_deliveries_delivered_total{job="sergas-webhook",instance="w1",subscription="s1"}', "0+10x40"),
    ('webhook_deliveries_retried_total{job="sergas-webhook",instance="w1",subscription="s1"}', "0+5x40"),
    ('webhook_deliveries_delivered_total{job="sergas-webhook",instance="w1",subscription="s2"}', "0+10x40"),
    ('webhook_deliveries_retried_total{job="sergas-webhook",instance="w1",subscription="s2"}', "0+1x40"),
], [
    ("5m", "SergasWebhookRetryStorm", []),
    ("25m", "SergasWebhookRetryStorm", [alert("SergasWebhookRetryStorm", dict(J, subscription="s1"))]),
])
case("slow delivery: p99 receipt to ack over a minute fires; under a second does not", [
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s1",le="1"}', "0x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s1",le="10"}', "0x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s1",le="100"}', "0+10x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s1",le="+Inf"}', "0+10x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s2",le="1"}', "0+10x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s2",le="10"}', "0+10x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s2",le="100"}', "0+10x40"),
    ('webhook_processing_duration_seconds_bucket{job="sergas-webhook",instance="w1",subscription="s2",le="+Inf"}', "0+10x40"),
], [
    ("10m", "SergasWebhookSlowDelivery", []),
    ("25m", "SergasWebhookSlowDelivery", [alert("SergasWebhookSlowDelivery", dict(J, subscription="s1"), "1m 39s")]),
])
case("push failing: 80% failures fire; 9% timeouts do not", [
    ('webhook_push_attempts_total{job="sergas-webhook",instance="w1",subscription="s1",result="success"}', "0+1x40"),
    ('webhook_push_attempts_total{job="sergas-webhook",instance="w1",subscription="s1",result="http_5xx"}', "0+4x40"),
    ('webhook_push_attempts_total{job="sergas-webhook",instance="w1",subscription="s2",result="success"}', "0+10x40"),
    ('webhook_push_attempts_total{job="sergas-webhook",instance="w1",subscription="s2",result="timeout"}', "0+1x40"),
], [
    ("5m", "SergasWebhookPushFailing", []),
    ("25m", "SergasWebhookPushFailing", [alert("SergasWebhookPushFailing", dict(J, subscription="s1"), "80%")]),
])

# --- gateway
J = {"job": "sergas-gateway"}
case("gateway 5xx: 9% fires after 5 minutes; 1% on another gateway does not", [
    ('http_requests_total{job="sergas-gateway",instance="g1",route="rest",method="GET",code="200"}', "0+100x30"),
    ('http_requests_total{job="sergas-gateway",instance="g1",route="rest",method="GET",code="503"}', "0+10x30"),
    ('http_requests_total{job="other-gateway",instance="g2",route="rest",method="GET",code="200"}', "0+100x30"),
    ('http_requests_total{job="other-gateway",instance="g2",route="rest",method="GET",code="500"}', "0+1x30"),
], [
    ("3m", "SergasGateway5xx", []),
    ("10m", "SergasGateway5xx", [alert("SergasGateway5xx", J, "9.091%")]),
])
case("gateway cannot reach a service", [
    ('gateway_service_unreachable_total{job="sergas-gateway",instance="g1",grpc_service="sergas.token.v1.TokenService"}', "0x5 0+1x20"),
], [
    ("4m", "SergasGatewayServiceUnreachable", []),
    ("15m", "SergasGatewayServiceUnreachable", [alert("SergasGatewayServiceUnreachable", dict(J, grpc_service="sergas.token.v1.TokenService"))]),
])
case("gateway credential refused by the webhook service", [
    ('gateway_webhook_credential_refused_total{job="sergas-gateway",instance="g1"}', "0x10 1x20"),
], [
    ("5m", "SergasGatewayWebhookCredentialRefused", []),
    ("12m", "SergasGatewayWebhookCredentialRefused", [alert("SergasGatewayWebhookCredentialRefused", {"job": "sergas-gateway", "instance": "g1"})]),
])

# --- database
case("UNAVAILABLE: 17% of webhook calls fires; 0.1% of token calls does not", [
    ('grpc_server_handled_total{job="sergas-webhook",instance="w1",grpc_service="sergas.webhook.v1.WebhookService",grpc_method="Ingest",grpc_code="OK"}', "0+100x30"),
    ('grpc_server_handled_total{job="sergas-webhook",instance="w1",grpc_service="sergas.webhook.v1.WebhookService",grpc_method="Ingest",grpc_code="Unavailable"}', "0+20x30"),
    ('grpc_server_handled_total{job="sergas-token",instance="t1",grpc_service="sergas.token.v1.TokenService",grpc_method="GetAccessToken",grpc_code="OK"}', "0+1000x30"),
    ('grpc_server_handled_total{job="sergas-token",instance="t1",grpc_service="sergas.token.v1.TokenService",grpc_method="GetAccessToken",grpc_code="Unavailable"}', "0+1x30"),
], [
    ("3m", "SergasServiceUnavailable", []),
    ("10m", "SergasServiceUnavailable", [alert("SergasServiceUnavailable", {"job": "sergas-webhook", "grpc_service": "sergas.webhook.v1.WebhookService"}, "16.67%")]),
])
case("database unreadable: gauges gone from a target that is up fires; a target that is down, or healthy, does not", [
    ('sergas_db_size_bytes{job="sergas-token",instance="t1",service="token"}', "1000x10"),
    ('up{job="sergas-token",instance="t1"}', "1x40"),
    ('sergas_db_size_bytes{job="sergas-token",instance="t2",service="token"}', "1000x10"),
    ('up{job="sergas-token",instance="t2"}', "1x10 0x30"),
    ('sergas_db_size_bytes{job="sergas-token",instance="t3",service="token"}', "1000x40"),
    ('up{job="sergas-token",instance="t3"}', "1x40"),
], [
    ("12m", "SergasDatabaseUnreadable", []),
    ("25m", "SergasDatabaseUnreadable", [alert("SergasDatabaseUnreadable", {"job": "sergas-token", "instance": "t1", "service": "token"})]),
])
case("worker restarts: three in 15 minutes fires, also on a counter that first appeared; one does not", [
    ('sergas_worker_restarts_total{job="sergas-webhook",instance="w1",worker="webhook.group_commit"}', "_x10 1 2 3 4 5x30"),
    ('sergas_worker_restarts_total{job="sergas-webhook",instance="w1",worker="webhook.retention_purger"}', "0x10 1x30"),
], [
    ("9m", "SergasBackgroundWorkerRestarting", []),
    ("14m", "SergasBackgroundWorkerRestarting", [alert("SergasBackgroundWorkerRestarting", {"job": "sergas-webhook", "worker": "webhook.group_commit"})]),
    ("40m", "SergasBackgroundWorkerRestarting", []),
])
case("SQLite WAL over 1 GiB for 30 minutes", [
    ('sergas_db_wal_bytes{job="sergas-webhook",instance="w1",service="webhook"}', "2147483648x40"),
    ('sergas_db_wal_bytes{job="sergas-audit",instance="a1",service="audit"}', "4096x40"),
], [
    ("20m", "SergasSQLiteWALLarge", []),
    ("35m", "SergasSQLiteWALLarge", [alert("SergasSQLiteWALLarge", {"job": "sergas-webhook", "instance": "w1", "service": "webhook"}, "2Gi")]),
])

covered = {e["alertname"] for t in tests for e in t["alert_rule_test"] if e["exp_alerts"]}
silent = {e["alertname"] for t in tests for e in t["alert_rule_test"] if not e["exp_alerts"]}
missing = set(rules) - (covered & silent)
if missing:
    raise SystemExit("alerts without a firing and a silent case: %s" % sorted(missing))

# promtool has no per-test name field: the name becomes a comment above each test.
out = ["# promtool test rules deploy/prometheus/alerts_test.yaml (deploy/monitoring_test.go runs it).",
       "# Written by gen_alerts_test.py: edit the cases there and run it again.",
       "# Each alert has a case where it fires and one where it does not. Times are from the start of",
       "# each test; values use promtool's series notation (a+bxN: N steps of b from a; _: no sample).",
       "rule_files: [alerts.yaml]",
       "evaluation_interval: 1m",
       "tests:"]
for t in tests:
    name = t.pop("name")
    body = yaml.safe_dump([t], sort_keys=False, width=200, default_flow_style=False)
    out.append("  # " + name)
    out.extend("  " + line for line in body.rstrip("\n").split("\n"))
open(ROOT + "/deploy/prometheus/alerts_test.yaml", "w").write("\n".join(out) + "\n")
