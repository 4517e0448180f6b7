package gateway

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/ratelimit"
)

// scriptedWebhook answers every Ingest with err (or a stored event when err is nil).
type scriptedWebhook struct {
	webhookv1.UnimplementedWebhookServiceServer
	err error
}

func (s scriptedWebhook) Ingest(context.Context, *webhookv1.IngestRequest) (*webhookv1.IngestResponse, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &webhookv1.IngestResponse{EventId: "e1"}, nil
}

// scriptedBatchWebhook also answers IngestBatch, as the webhook service does: err for every item, or
// for the whole call when whole is set (the guard refusing the gateway's own call).
type scriptedBatchWebhook struct {
	scriptedWebhook
	whole bool
}

func (s scriptedBatchWebhook) IngestBatch(ctx context.Context, req *webhookv1.IngestBatchRequest) (*webhookv1.IngestBatchResponse, error) {
	if s.whole {
		return nil, s.err
	}
	resp := &webhookv1.IngestBatchResponse{}
	for _, it := range req.GetItems() {
		r, err := s.Ingest(ctx, it.GetRequest())
		res := &webhookv1.IngestBatchResult{Response: r}
		if err != nil {
			res.ErrorStatus, _ = proto.Marshal(status.Convert(err).Proto())
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func serveScripted(t *testing.T, err error) string {
	t.Helper()
	return serveWebhook(t, scriptedWebhook{err: err})
}

// serveWebhook serves svc as the webhook service on a loopback port and returns its address.
func serveWebhook(t *testing.T, svc webhookv1.WebhookServiceServer) string {
	t.Helper()
	lis, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	srv := grpc.NewServer()
	webhookv1.RegisterWebhookServiceServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func withWebhookInfo(code codes.Code, msg, reason string) error {
	st, _ := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: webhookErrorDomain, Reason: reason})
	return st.Err()
}

// Each refusal of the webhook service gets its HTTP answer, whether it comes from a single Ingest call
// (a webhook service without IngestBatch) or as one item's status of an IngestBatch; in particular the sender's bad signature
// (401) is never confused with the service refusing the gateway's own credential (503, logged, counted).
func TestIngestAnswers(t *testing.T) {
	backlogFull, _ := status.Convert(ratelimit.RetryError(codes.Unavailable, "undelivered backlog is full", 5*time.Second)).
		WithDetails(&errdetails.ErrorInfo{Domain: webhookErrorDomain, Reason: "BACKLOG_FULL"})
	sourceLimited, _ := status.Convert(ratelimit.Exceeded("source", 1500*time.Millisecond)).
		WithDetails(&errdetails.ErrorInfo{Domain: webhookErrorDomain, Reason: "RATE_LIMITED"})
	for _, c := range []struct {
		name       string
		err        error
		code       int
		retryAfter string
		ownCred    bool
	}{
		{"stored", nil, 202, "", false},
		{"bad signature", withWebhookInfo(codes.Unauthenticated, "signature does not match", webhookUnverified), 401, "", false},
		{"gateway credential missing", status.Error(codes.Unauthenticated, "missing credentials: send the header authorization: Bearer <API key or JWT>"), 503, "30", true},
		{"gateway credential lacks the scope", status.Error(codes.PermissionDenied, "method requires scope webhook:ingest"), 503, "30", true},
		{"over the source's body limit", withWebhookInfo(codes.ResourceExhausted, "body exceeds 16 bytes", webhookBodyTooLarge), 413, "", false},
		{"over the source's rate", sourceLimited.Err(), 429, "2", false},
		{"gateway credential over its budget", ratelimit.Exceeded("credential", 1500*time.Millisecond), 503, "2", true},
		{"backlog full", backlogFull.Err(), 503, "5", false},
		{"malformed body", status.Error(codes.InvalidArgument, "a Zoho CRM notification must be a JSON object"), 400, "", false},
		{"unknown source", status.Error(codes.NotFound, `webhook source "x" is not configured`), 404, "", false},
	} {
		for mode, svc := range map[string]webhookv1.WebhookServiceServer{
			"one Ingest call each": scriptedWebhook{err: c.err},
			"IngestBatch":          scriptedBatchWebhook{scriptedWebhook{err: c.err}, c.ownCred},
		} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				logs := &syncBuffer{}
				g := newGateway(t, nil, serveWebhook(t, svc), logs)
				base := serveHTTP(t, g)
				before := testutil.ToFloat64(ingestCredentialRefused)
				code, h, body := send(t, "POST", base+"/webhooks/zoho", "{}", "Authorization", "Bearer sender-secret")
				if code != c.code || h.Get("Retry-After") != c.retryAfter {
					t.Fatalf("%d Retry-After=%q %s; want %d Retry-After=%q", code, h.Get("Retry-After"), body, c.code, c.retryAfter)
				}
				if code == 401 && strings.Contains(h.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("a sender's signature failure answered with a Bearer challenge: %q", h.Get("WWW-Authenticate"))
				}
				counted := testutil.ToFloat64(ingestCredentialRefused) - before
				logged := strings.Contains(logs.String(), "the gateway's own credential")
				if c.ownCred != (counted >= 1) || c.ownCred != logged {
					t.Errorf("own credential refusal: counted %v, logged %v, want %v", counted, logged, c.ownCred)
				}
				if c.ownCred && (strings.Contains(body, "scope") || strings.Contains(body, "credentials")) {
					t.Errorf("the sender is told about our credential: %s", body)
				}
			})
		}
	}
}
