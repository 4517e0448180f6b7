package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sergas/core/internal/retryafter"
	"github.com/sergas/core/internal/safedial"
	"github.com/sergas/core/services/webhook/store"
)

// Bounds of what a push request reads and waits for besides the subscription's timeout.
const (
	// pushDialTimeout bounds one connection attempt (the request's own deadline may end it sooner).
	pushDialTimeout = 10 * time.Second
	// pushDrainBytes is what is read past the excerpt so that the connection can be reused; a longer
	// answer closes it.
	pushDrainBytes = 64 << 10
	// pushUserAgent names the sender to endpoints.
	pushUserAgent = "sergas-webhook-push/1"
)

// Attempt results: the label values of webhook_push_attempts_total (a fixed set).
const (
	pushResultSuccess    = "success"
	pushResultHTTP3xx    = "http_3xx"
	pushResultHTTP4xx    = "http_4xx"
	pushResultHTTP5xx    = "http_5xx"
	pushResultHTTPOther  = "http_other"
	pushResultTimeout    = "timeout"
	pushResultRefused    = "ssrf_refused"
	pushResultConnection = "connection_error"
	pushResultTLS        = "tls_error"
	pushResultDNS        = "dns_error"
	pushResultInternal   = "internal_error"
)

// pushClients are the HTTP clients of push requests: one that refuses non-public addresses at every
// connection (safedial), one for subscriptions that allow private networks. Neither follows redirects
// (a 3xx is a failed attempt: following one would let an endpoint send the signed event, and our
// connection, elsewhere) nor uses an HTTP proxy from the environment (the proxy's address would be
// checked instead of the endpoint's).
type pushClients struct{ public, private *http.Client }

func newPushClients(maxConnsPerHost int) pushClients {
	client := func(allowPrivate bool) *http.Client {
		d := safedial.Dialer(pushDialTimeout, allowPrivate)
		return &http.Client{
			Transport: &http.Transport{
				Proxy: nil, DialContext: d.DialContext, ForceAttemptHTTP2: true,
				TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
				TLSHandshakeTimeout: pushDialTimeout, MaxIdleConns: 1000, MaxIdleConnsPerHost: maxConnsPerHost,
				IdleConnTimeout: 90 * time.Second, MaxResponseHeaderBytes: 64 << 10, DisableCompression: true,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return pushClients{public: client(false), private: client(true)}
}

func (c pushClients) close() {
	c.public.CloseIdleConnections()
	c.private.CloseIdleConnections()
}

// pushOutcome is how one push attempt ended: what its settle records and what the metrics count.
type pushOutcome struct {
	claimed store.Claimed
	ok      bool
	status  int32  // 0: no answer
	excerpt string // at most store.MaxResponseExcerpt bytes of valid UTF-8 without NUL
	err     string // empty on success; never the URL, its query or a secret
	result  string // a pushResult* value
	// retryAfter is the endpoint's Retry-After on 429 and 503 (0: none), capped by the backoff cap.
	retryAfter time.Duration
	took       time.Duration
}

// send POSTs one claimed delivery to t's endpoint, signed, and says how it ended. ctx bounds it (the
// subscription's timeout).
func (p *pusher) send(ctx context.Context, t *pushTarget, c store.Claimed) pushOutcome {
	out := pushOutcome{claimed: c}
	body, err := pushBody(p.s.toProto(c.Event))
	if err != nil {
		out.err, out.result = "the event could not be encoded", pushResultInternal
		return out
	}
	id := strconv.FormatInt(c.Delivery.ID, 10)
	now := p.s.now()
	ts := strconv.FormatInt(now.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.sub.Push.Endpoint, bytes.NewReader(body))
	if err != nil {
		out.err, out.result = "the endpoint is not a valid URL", pushResultInternal
		return out
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", pushUserAgent)
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", ts)
	h.Set("Webhook-Signature", standardSignatures(t.keysAt(now), id, ts, body))
	client := p.clients.public
	if t.sub.Push.AllowPrivateNetwork {
		client = p.clients.private
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		out.took = time.Since(start)
		out.err, out.result = pushError(err)
		return out
	}
	defer resp.Body.Close()
	buf := make([]byte, store.MaxResponseExcerpt)
	n, _ := io.ReadFull(resp.Body, buf)
	// The rest is read (up to a bound) so that the connection can carry the next request.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, pushDrainBytes))
	out.took = time.Since(start)
	out.status, out.excerpt = int32(resp.StatusCode), responseExcerpt(buf[:n])
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		out.ok, out.result = true, pushResultSuccess
		return out
	case code >= 300 && code < 400:
		out.result = pushResultHTTP3xx
	case code >= 400 && code < 500:
		out.result = pushResultHTTP4xx
	case code >= 500 && code < 600:
		out.result = pushResultHTTP5xx
	default:
		out.result = pushResultHTTPOther
	}
	out.err = "HTTP " + strconv.Itoa(code)
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		out.retryAfter = retryafter.Parse(resp.Header.Get("Retry-After"), now, t.sub.Retry.BackoffCap)
	}
	return out
}

// responseExcerpt makes the start of an answer storable: valid UTF-8 (a character cut at the end, and
// any invalid byte, dropped) without NUL, so never longer than what was read.
func responseExcerpt(b []byte) string {
	return strings.ReplaceAll(strings.ToValidUTF8(string(b), ""), "\x00", "")
}

// pushError says what went wrong with a request that got no answer, in words that name neither the
// endpoint nor its addresses, and the result it counts as.
func pushError(err error) (string, string) {
	var refused *safedial.RefusedError
	var dnsErr *net.DNSError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &refused):
		return refused.Error(), pushResultRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout", pushResultTimeout
	case errors.Is(err, context.Canceled):
		return "cancelled: the service is stopping", pushResultConnection
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "host not found", pushResultDNS
		}
		return "DNS lookup failed", pushResultDNS
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalidCert):
		return "TLS certificate not accepted", pushResultTLS
	case errors.As(err, &recordErr), errors.As(err, &alert):
		return "TLS handshake failed", pushResultTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused", pushResultConnection
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset", pushResultConnection
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable", pushResultConnection
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed without an answer", pushResultConnection
	}
	return "request failed", pushResultConnection
}
