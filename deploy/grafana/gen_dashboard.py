#!/usr/bin/env python3
"""Writes sergas-core.json beside it, the Grafana dashboard.

Edit the panels here and run `python3 deploy/grafana/gen_dashboard.py`; or edit the dashboard in Grafana,
export it ("Export for sharing externally" off, so that the data source stays the ${datasource}
variable) and keep this script in step. deploy/monitoring_test.go checks the result.
"""
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'
RI = "$__rate_interval"

panels = []
next_id = [1]
y = [0]
x = [0]


def nid():
    i = next_id[0]
    next_id[0] += 1
    return i


def row(title):
    if x[0] != 0:
        y[0] += 8
        x[0] = 0
    panels.append({"type": "row", "id": nid(), "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y[0]}, "panels": []})
    y[0] += 1


def place(w, h):
    if x[0] + w > 24:
        y[0] += h
        x[0] = 0
    pos = {"h": h, "w": w, "x": x[0], "y": y[0]}
    x[0] += w
    if x[0] >= 24:
        x[0] = 0
        y[0] += h
    return pos


def targets(qs):
    out = []
    for i, (expr, legend) in enumerate(qs):
        out.append({"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                    "range": True, "editorMode": "code"})
    return out


def ts(title, desc, qs, unit="short", w=12, h=8, stack=False):
    panels.append({
        "type": "timeseries", "id": nid(), "title": title, "description": desc, "datasource": DS,
        "gridPos": place(w, h), "targets": targets(qs),
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "custom": {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    })


def stat(title, desc, qs, unit="short", w=6, h=4, steps=None):
    steps = steps or [{"color": "green", "value": None}]
    panels.append({
        "type": "stat", "id": nid(), "title": title, "description": desc, "datasource": DS,
        "gridPos": place(w, h), "targets": targets([(e, l) for e, l in qs]),
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "background", "graphMode": "none", "textMode": "auto", "justifyMode": "auto",
                    "orientation": "auto"},
    })


def red_at(v):
    return [{"color": "green", "value": None}, {"color": "red", "value": v}]


def q(name, extra=""):
    """A selector of name with the job and instance variables (and extra matchers)."""
    return "%s{%s%s}" % (name, extra + ", " if extra else "", SEL)


def quantiles(metric, by, extra="", legend=""):
    out = []
    for p in ("0.5", "0.99"):
        out.append(("histogram_quantile(%s, sum by (le%s) (rate(%s[%s])))" % (p, ", " + by if by else "", q(metric + "_bucket", extra), RI),
                    "p%s %s" % ({"0.5": "50", "0.99": "99"}[p], legend)))
    return out


# --- gateway
row("Gateway (HTTP)")
ts("Requests by status", "http_requests_total by status code: every REST call, webhook and probe the gateway served.",
   [("sum by (code) (rate(%s[%s]))" % (q("http_requests_total"), RI), "{{code}}")], unit="reqps", w=8, stack=True)
ts("5xx ratio", "Share of gateway requests answered 5xx (alert SergasGateway5xx at 5%).",
   [("sum(rate(%s[%s])) / sum(rate(%s[%s]))" % (q("http_requests_total", 'code=~"5.."'), RI, q("http_requests_total"), RI), "5xx")],
   unit="percentunit", w=8)
ts("Latency by route (p50, p99)", "From http_request_duration_seconds; rest_stream (NDJSON streams) lasts as long as the client reads.",
   quantiles("http_request_duration_seconds", "route", legend="{{route}}"), unit="s", w=8)
ts("Errors by route and status", "Requests answered 4xx or 5xx, by route pattern and code.",
   [("sum by (route, code) (rate(%s[%s]))" % (q("http_requests_total", 'code=~"[45].."'), RI), "{{route}} {{code}}")], unit="reqps")
ts("Services unreachable, webhook credential refused", "gateway_service_unreachable_total: calls the gateway could not deliver; gateway_webhook_credential_refused_total: webhooks answered 503 because the webhook service refused the gateway's own key.",
   [("sum by (grpc_service) (rate(%s[%s]))" % (q("gateway_service_unreachable_total"), RI), "unreachable {{grpc_service}}"),
    ("sum(rate(%s[%s]))" % (q("gateway_webhook_credential_refused_total"), RI), "credential refused")], unit="reqps")

# --- gRPC
row("Services (gRPC)")
ts("Requests by service", "grpc_server_handled_total: RPCs completed by each service.",
   [("sum by (grpc_service) (rate(%s[%s]))" % (q("grpc_server_handled_total"), RI), "{{grpc_service}}")], unit="reqps", w=8)
ts("Errors by service and code", "RPCs that ended with a code other than OK.",
   [("sum by (grpc_service, grpc_code) (rate(%s[%s]))" % (q("grpc_server_handled_total", 'grpc_code!="OK"'), RI), "{{grpc_service}} {{grpc_code}}")],
   unit="reqps", w=8)
ts("Latency by service (p50, p99)", "From grpc_server_handling_seconds.",
   quantiles("grpc_server_handling_seconds", "grpc_service", legend="{{grpc_service}}"), unit="s", w=8)
ts("Latency by method (p99)", "The slowest methods; streams (Receive, ExportEvents) last as long as the client reads.",
   [("topk(10, histogram_quantile(0.99, sum by (le, grpc_service, grpc_method) (rate(%s[%s]))))" % (q("grpc_server_handling_seconds_bucket"), RI),
     "{{grpc_method}}")], unit="s")
ts("Calls refused before the handler", "auth_denied_total: no or wrong credential, missing scope, address budget spent.",
   [("sum by (grpc_service, reason) (rate(%s[%s]))" % (q("auth_denied_total"), RI), "{{grpc_service}} {{reason}}")], unit="reqps")

# --- token
row("Token service")
stat("Connections needing re-authorisation", "A person must authorise these again (alert SergasTokenConnectionsNeedReauthorization).",
     [("max(%s)" % q("token_connections_needing_reauthorization"), "")], steps=red_at(1))
stat("Active connections", "token_connections{status=\"active\"}.", [("max(%s)" % q("token_connections", 'status="active"'), "")])
stat("Refresh failures (1h)", "Refreshes that did not succeed in the last hour, all providers.",
     [("sum(increase(%s[1h]))" % q("token_refreshes_total", 'result!="success"'), "")], steps=red_at(1))
stat("GetAccessToken p99", "The hot path, refreshes included.",
     [("histogram_quantile(0.99, sum by (le) (rate(%s[%s])))" % (q("grpc_server_handling_seconds_bucket", 'grpc_method="GetAccessToken"'), RI), "")],
     unit="s")
ts("Refreshes by result", "token_refreshes_total: success, the provider's failure class, budget_spent, not_configured, unseal_failed, store_failed.",
   [("sum by (provider, result) (rate(%s[%s]))" % (q("token_refreshes_total"), RI), "{{provider}} {{result}}")], unit="ops")
ts("Connections by status", "token_connections (at most 10,000 counted).",
   [("max by (status) (%s)" % q("token_connections"), "{{status}}")])

# --- audit
row("Audit service")
stat("Chain head", "Sequence of the newest audit event.", [("max(%s)" % q("audit_chain_head_sequence"), "")], unit="none")
stat("Events since the last checkpoint", "Events not yet covered by a signed checkpoint.",
     [("max(%s) - max(%s)" % (q("audit_chain_head_sequence"), q("audit_last_checkpoint_sequence")), "")], unit="none")
stat("Checkpoint age", "Time since the newest checkpoint (alert SergasAuditCheckpointOverdue after an hour with events since).",
     [("time() - max(%s)" % q("audit_last_checkpoint_timestamp_seconds"), "")], unit="s", steps=red_at(3600))
stat("Failed verifications (24h)", "VerifyChain calls that found the chain broken (alert SergasAuditChainVerificationFailed).",
     [("sum(increase(%s[24h]))" % q("audit_chain_verifications_total", 'result!="valid"'), "")], steps=red_at(1))
ts("Append rate", "RecordEvent and RecordEvents calls answered OK, and the chain head's growth in events per second (outbox batches included).",
   [("sum by (grpc_method) (rate(%s[%s]))" % (q("grpc_server_handled_total", 'grpc_service="sergas.audit.v1.AuditService", grpc_method=~"RecordEvent|RecordEvents", grpc_code="OK"'), RI), "{{grpc_method}} calls/s"),
    ("max(deriv(%s[5m]))" % q("audit_chain_head_sequence"), "events/s")], unit="ops", w=8)
ts("Chain verifications by result", "audit_chain_verifications_total.",
   [("sum by (result) (increase(%s[%s]))" % (q("audit_chain_verifications_total"), RI), "{{result}}")], w=8)
ts("Audit outbox of token and webhook", "Events the other services queued for the audit service: sent, and parked (refused for good, set aside).",
   [("sum by (service) (rate(%s[%s]))" % (q("audit_outbox_sent_total"), RI), "sent {{service}}"),
    ("sum by (service, code) (rate(%s[%s]))" % (q("audit_outbox_parked_total"), RI), "parked {{service}} {{code}}")], unit="ops", w=8)

# --- webhook ingest
row("Webhook ingest")
ts("Accepted by source", "webhook_ingest_accepted_total: stored, or duplicate of a stored delivery.",
   [("sum by (source, result) (rate(%s[%s]))" % (q("webhook_ingest_accepted_total"), RI), "{{source}} {{result}}")], unit="reqps", w=8)
ts("Refused by reason", "webhook_ingest_refused_total by source and reason (bad_signature, backlog_full, store_error, …).",
   [("sum by (source, reason) (rate(%s[%s]))" % (q("webhook_ingest_refused_total"), RI), "{{source}} {{reason}}")], unit="reqps", w=8)
ts("Undelivered events", "webhook_backlog_events: what WEBHOOK_MAX_QUEUE_SIZE is compared with.",
   [("max(%s)" % q("webhook_backlog_events"), "undelivered")], w=8)
ts("Group commit batch size (p50, p99)", "Deliveries per commit: many batches of one mean each delivery pays for a commit of its own.",
   quantiles("webhook_group_commit_batch_events", ""), w=12)
ts("Sources file reloads", "WEBHOOK_SOURCES_FILE re-read, and refused (alert SergasWebhookSourcesReloadFailing).",
   [("sum(increase(%s[%s]))" % (q("webhook_sources_reloads_total"), RI), "reloaded"),
    ("sum(increase(%s[%s]))" % (q("webhook_sources_reload_errors_total"), RI), "refused")], w=12)

# --- webhook delivery
row("Webhook delivery")
ts("Backlog by subscription", "webhook_subscription_backlog: deliveries not delivered, by status.",
   [("max by (subscription, status) (%s)" % q("webhook_subscription_backlog"), "{{subscription}} {{status}}")], w=8)
ts("Oldest pending delivery", "Age of each subscription's oldest pending, leased or failed delivery (alerts SergasWebhookBacklogOld, SergasWebhookBacklogStuck).",
   [("max by (subscription) (%s)" % q("webhook_subscription_oldest_pending_seconds"), "{{subscription}}")], unit="s", w=8)
ts("Delivered, retried, dead-lettered", "Deliveries acknowledged, handed out again after a failed attempt, and out of retries.",
   [("sum(rate(%s[%s]))" % (q("webhook_deliveries_delivered_total"), RI), "delivered"),
    ("sum(rate(%s[%s]))" % (q("webhook_deliveries_retried_total"), RI), "retried"),
    ("sum(rate(%s[%s]))" % (q("webhook_deliveries_dead_lettered_total"), RI), "dead-lettered")], unit="ops", w=8)
ts("Dead letters by subscription", "New dead letters (alert SergasWebhookDeadLetters) and those waiting to be redriven.",
   [("sum by (subscription) (increase(%s[%s]))" % (q("webhook_deliveries_dead_lettered_total"), RI), "new {{subscription}}"),
    ("max by (subscription) (%s)" % q("webhook_subscription_backlog", 'status="dead_letter"'), "waiting {{subscription}}")], w=8)
ts("Receipt to ack (p50, p99)", "webhook_processing_duration_seconds: queueing, retries and backoff included.",
   quantiles("webhook_processing_duration_seconds", ""), unit="s", w=8)
ts("Attempt duration (p50, p99)", "webhook_delivery_attempt_duration_seconds: hand-out to ack or nack, the consumer's own time.",
   quantiles("webhook_delivery_attempt_duration_seconds", "outcome", legend="{{outcome}}"), unit="s", w=8)

ts("Push attempts by result", "webhook_push_attempts_total by subscription and result (alert SergasWebhookPushFailing).",
   [("sum by (subscription, result) (rate(%s[%s]))" % (q("webhook_push_attempts_total"), RI), "{{subscription}} {{result}}")], unit="reqps", w=12)
ts("Retries per ack", "Retried deliveries per delivered one, by subscription (alert SergasWebhookRetryStorm above 0.2).",
   [("sum by (subscription) (rate(%s[%s])) / sum by (subscription) (rate(%s[%s]))" % (q("webhook_deliveries_retried_total"), RI, q("webhook_deliveries_delivered_total"), RI), "{{subscription}}")],
   unit="percentunit", w=12)

# --- zoho channels
row("Zoho CRM channels")
stat("Next channel expiry", "Soonest expiry of a channel that is not disabled; 0 without channels (alert SergasZohoChannelExpiringSoon under 6 h).",
     [("min(%s)" % q("webhook_zoho_channel_next_expiry_seconds"), "")], unit="s",
     steps=[{"color": "red", "value": None}, {"color": "green", "value": 21600}], w=8, h=8)
ts("Channels by state", "webhook_zoho_channels, as the renewing replica last counted.",
   [("max by (state) (%s)" % q("webhook_zoho_channels"), "{{state}}")], w=8)
ts("Renewals by result", "webhook_zoho_channel_renewals_total: renewals asked of Zoho.",
   [("sum by (result) (increase(%s[%s]))" % (q("webhook_zoho_channel_renewals_total"), RI), "{{result}}")], w=8)

# --- database
row("Databases")
ts("Database size", "sergas_db_size_bytes: the SQLite file without its WAL, or the PostgreSQL schema.",
   [("max by (service) (%s)" % q("sergas_db_size_bytes"), "{{service}}")], unit="bytes", w=8)
ts("SQLite WAL", "sergas_db_wal_bytes: one that keeps growing is held by a long read transaction (alert SergasSQLiteWALLarge).",
   [("max by (service) (%s)" % q("sergas_db_wal_bytes"), "{{service}}")], unit="bytes", w=8)
ts("SQLite free pages", "sergas_db_free_bytes: returned to the file system by sergasctl maintain.",
   [("max by (service) (%s)" % q("sergas_db_free_bytes"), "{{service}}")], unit="bytes", w=8)
ts("UNAVAILABLE answers", "RPCs answered UNAVAILABLE: the database (or for token, the provider) down or busy (alert SergasServiceUnavailable).",
   [("sum by (grpc_service) (rate(%s[%s]))" % (q("grpc_server_handled_total", 'grpc_code="Unavailable"'), RI), "{{grpc_service}}")], unit="reqps")
ts("Background worker restarts", "sergas_worker_restarts_total: workers restarted after an error or a panic (alert SergasBackgroundWorkerRestarting).",
   [("sum by (worker) (increase(%s[%s]))" % (q("sergas_worker_restarts_total"), RI), "{{worker}}")])

VARQ = '{__name__=~"grpc_server_handled_total|http_requests_total"}'
dashboard = {
    "title": "Sergas Core",
    "uid": "sergas-core",
    "description": "Token, audit and webhook services and the gateway: rates, errors, latencies, refreshes, the audit chain, webhook backlog and dead letters, databases. Alerts: deploy/prometheus/alerts.yaml.",
    "tags": ["sergas"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "timezone": "browser",
    "fiscalYearStartMonth": 0,
    "liveNow": False,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "timepicker": {},
    "links": [],
    "annotations": {"list": [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": ""},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS,
         "definition": "label_values(%s, job)" % VARQ,
         "query": {"qryType": 1, "query": "label_values(%s, job)" % VARQ, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+", "sort": 1, "hide": 0, "regex": "",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": []},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
         "definition": 'label_values({__name__=~"grpc_server_handled_total|http_requests_total", job=~"$job"}, instance)',
         "query": {"qryType": 1, "query": 'label_values({__name__=~"grpc_server_handled_total|http_requests_total", job=~"$job"}, instance)',
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "refresh": 2, "includeAll": True, "multi": True, "allValue": ".+", "sort": 1, "hide": 0, "regex": "",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": []},
    ]},
    "panels": panels,
}
with open(ROOT + "/deploy/grafana/sergas-core.json", "w") as f:
    json.dump(dashboard, f, indent=2, ensure_ascii=False)
    f.write("\n")
print(len(panels), "panels")
