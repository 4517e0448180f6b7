package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total",
		Help: "HTTP requests served by the gateway, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_request_duration_seconds",
		Help:    "Time to serve an HTTP request at the gateway, by route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	transportErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_service_unreachable_total",
		Help: "RPCs the gateway could not deliver (service down or connection lost), by gRPC service.",
	}, []string{"grpc_service"})
)

// methods are the HTTP methods counted under their own name; any other is counted as "other", so that a
// caller cannot create a series per request by inventing methods.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodOptions: true, http.MethodConnect: true, http.MethodTrace: true,
}

func methodLabel(m string) string {
	if methods[m] {
		return m
	}
	return "other"
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// instrument counts requests by the matched route pattern (never the raw path, whose ids would make
// unbounded label values), a known method and the status code.
// h serves the request; mux only names its route. Streamed REST answers (isStream), which last as long
// as the client reads, are counted as "rest_stream", apart from the other REST calls' latencies.
func instrument(mux *http.ServeMux, isStream func(*http.Request) bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		route := routeOf(mux, isStream, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		httpRequests.WithLabelValues(route, methodLabel(r.Method), strconv.Itoa(rec.code)).Inc()
		httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// routeOf names r's route for metrics and spans: the root mux's pattern, or "rest" and "rest_stream" for
// the REST routes.
func routeOf(mux *http.ServeMux, isStream func(*http.Request) bool, r *http.Request) string {
	_, route := mux.Handler(r)
	if route == "/" {
		route = "rest"
		if isStream(r) {
			route = "rest_stream"
		}
	}
	return route
}
