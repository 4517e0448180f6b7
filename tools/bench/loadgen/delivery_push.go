package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The push sink: the webhook service POSTs each delivery of a push subscription to an HTTP endpoint this
// process serves on -push-addr (the address the subscription names), signed with Standard Webhooks under
// the secret in BENCH_PUSH_SECRET. The endpoint checks every request as a receiver should (signature,
// timestamp), reads the event's id and receiveTime from the body, records the first receipt of each
// event and answers 204, which acknowledges the delivery.
//
// Push is at least once: the service may send a delivery again (an answer lost, a settle that could not
// be recorded). A second receipt of an event is counted as a duplicate, not recorded again; so is an
// event stored before this process started, which a previous run already counted.

const (
	// maxPushBody bounds what the endpoint reads of a request: a 1 KiB webhook is about 2.5 KiB as the
	// Event's JSON (payload in base64, headers).
	maxPushBody = 1 << 20
	// pushTolerance is how far a request's webhook-timestamp may be from this process's clock, as
	// Standard Webhooks receivers check (the library default is five minutes).
	pushTolerance = 5 * time.Minute
)

// pushSink is the HTTP endpoint. It listens from newPushSink on, so that no push of the run finds the
// port closed.
type pushSink struct {
	lis   net.Listener
	key   []byte
	since time.Time // events received before are an earlier run's

	record func(ackRecord)
	failed chan error // the first refused request ends the run

	mu   sync.Mutex
	seen map[string]struct{}

	requests atomic.Int64
	dups     atomic.Int64
}

func newPushSink(addr, secret string) (*pushSink, error) {
	key, err := parseStandardSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("BENCH_PUSH_SECRET: %w", err)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("push endpoint: %w", err)
	}
	return &pushSink{lis: lis, key: key, since: time.Now(), failed: make(chan error, 1), seen: map[string]struct{}{}}, nil
}

// settles is how many requests were answered 204: each settles one delivery.
func (p *pushSink) settles() int64 { return p.requests.Load() }

func (p *pushSink) duplicates() int64 { return p.dups.Load() }

// run serves until ctx ends or a request is refused (a bad signature or body fails the run at once,
// rather than after the drain's deadline: the service would only retry it).
func (p *pushSink) run(ctx context.Context, record func(ackRecord)) error {
	p.record = record
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(p.lis) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-p.failed:
	case err = <-served:
		return fmt.Errorf("push endpoint: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return err
}

// pushedEvent is what the endpoint reads of the Event's JSON (protojson: lowerCamel names, RFC 3339
// times).
type pushedEvent struct {
	ID          string    `json:"id"`
	ReceiveTime time.Time `json:"receiveTime"`
}

func (p *pushSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPushBody))
	got := time.Now()
	if err != nil || r.Method != http.MethodPost {
		p.refuse(w, http.StatusBadRequest, fmt.Errorf("push request %s: body not read (%v)", r.Method, err))
		return
	}
	if err := verifyStandard(p.key, r.Header, body, got); err != nil {
		p.refuse(w, http.StatusUnauthorized, fmt.Errorf("push request refused: %w", err))
		return
	}
	var ev pushedEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.ReceiveTime.IsZero() {
		p.refuse(w, http.StatusBadRequest, fmt.Errorf("push body without an event id and receiveTime (%v)", err))
		return
	}
	p.requests.Add(1)
	if p.first(ev) {
		p.record(ackRecord{at: got, latency: got.Sub(ev.ReceiveTime)})
	} else {
		p.dups.Add(1)
	}
	w.WriteHeader(http.StatusNoContent)
}

// first reports whether ev is received for the first time in this run.
func (p *pushSink) first(ev pushedEvent) bool {
	if ev.ReceiveTime.Before(p.since) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, dup := p.seen[ev.ID]; dup {
		return false
	}
	p.seen[ev.ID] = struct{}{}
	return true
}

func (p *pushSink) refuse(w http.ResponseWriter, code int, err error) {
	select {
	case p.failed <- err:
	default:
	}
	http.Error(w, http.StatusText(code), code)
}

// parseStandardSecret returns the key of a Standard Webhooks secret, "whsec_" and the base64 of the key.
func parseStandardSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New("not a whsec_ secret")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) == 0 {
		return nil, errors.New("whsec_ not followed by base64")
	}
	return key, nil
}

// verifyStandard checks a Standard Webhooks request as a receiver does: webhook-timestamp within
// pushTolerance of now, and one of webhook-signature's "v1,<base64>" entries (space-separated; two
// during a rotation) the HMAC-SHA256 under key of "<webhook-id>.<webhook-timestamp>.<body>".
func verifyStandard(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not Unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > pushTolerance || d < -pushTolerance {
		return fmt.Errorf("webhook-timestamp %s off by %s", ts, d.Round(time.Second))
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, b64, _ := strings.Cut(s, ",")
		if version != "v1" {
			continue
		}
		if sig, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(sig, want) {
			return nil
		}
	}
	return errors.New("no v1 signature matches")
}
