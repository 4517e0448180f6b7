package gateway

import (
	"encoding/json"
	"testing"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/gen/openapi"
)

// Every operation of the OpenAPI document but the raw webhook ingress is a grpc-gateway route in the
// table, so that no route ends up refusing every query parameter because its operation id went unmatched.
func TestRouteTableCoversEveryOperation(t *testing.T) {
	rt, err := buildRoutes([]string{tokenv1.TokenService_ServiceDesc.ServiceName, auditv1.AuditService_ServiceDesc.ServiceName,
		webhookv1.WebhookService_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for path, m := range doc.Paths {
		if path != "/webhooks/{source}" {
			ops += len(m)
		}
	}
	if len(rt.routes) != ops {
		t.Fatalf("%d routes in the table, %d operations in the OpenAPI document", len(rt.routes), ops)
	}
	if q := rt.routes[routeKey("GET", "/v1/audit/events")].query; !q["page_size"] || !q["start_time"] || !q["session_id"] || !q["actor_type"] || len(q) != 13 {
		t.Errorf("audit ListEvents query parameters: %v", q)
	}
	if q := rt.routes[routeKey("GET", "/v1/webhook/events")].query; !q["module"] || !q["operation"] || !q["event_type"] || !q["page_token"] || len(q) != 7 {
		t.Errorf("webhook ListEvents query parameters: %v", q)
	}
	if q := rt.routes[routeKey("GET", "/v1/audit/events:export")].query; !q["start_sequence"] || !q["end_time"] || len(q) != 4 {
		t.Errorf("audit ExportEvents query parameters: %v", q)
	}
	// Only the audit export and the webhook Receive stream, and so only they bypass the request timeout.
	if len(rt.streams) != 2 || !rt.streams[routeKey("GET", "/v1/audit/events:export")] || !rt.streams[routeKey("POST", "/v1/webhook/deliveries:receive")] {
		t.Errorf("streaming routes: %v", rt.streams)
	}
}
