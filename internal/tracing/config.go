// Package tracing sets up OpenTelemetry tracing from the standard OTEL_* variables and holds the small
// pieces every server and client shares: the W3C trace-context propagator, the trace id of a context,
// and the carriers of gRPC metadata.
//
// Propagation is always on: a traceparent that arrives (from a REST caller or a service mesh) is
// continued, and every request gets a trace id that its log lines, error answers and audit events carry,
// whether or not spans are exported. Exporting (OTLP over gRPC or HTTP) is on only when an endpoint is
// configured; without one no exporter, goroutine or connection exists, and spans are never recorded.
package tracing

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/sergas/core/internal/config"
)

// Protocols an OTLP exporter speaks.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config is what LoadConfig reads.
type Config struct {
	// Export is whether spans are exported: an endpoint is set, OTEL_TRACES_EXPORTER is not "none" and
	// OTEL_SDK_DISABLED is not true.
	Export bool
	// Endpoint is the full URL of the traces endpoint (for http/protobuf, path included).
	Endpoint string
	Protocol string
	// Headers go with every export (an API key of a hosted collector: never logged).
	Headers map[string]string
	// ServiceName is service.name; Attributes the other resource attributes.
	ServiceName string
	Attributes  map[string]string
	// Sampler and SamplerArg follow OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG.
	Sampler    string
	SamplerArg float64
}

// samplers are the OTEL_TRACES_SAMPLER values the SDK supports without extensions.
var samplers = []string{"parentbased_always_on", "always_on", "always_off", "traceidratio",
	"parentbased_always_off", "parentbased_traceidratio"}

// LoadConfig reads the OTEL_* variables; service is the default service.name (OTEL_SERVICE_NAME
// overrides it). Bad values are reported through env.
func LoadConfig(env *config.Env, service string) Config {
	c := Config{ServiceName: env.String("OTEL_SERVICE_NAME", service)}
	disabled := env.Bool("OTEL_SDK_DISABLED", false)
	exporter := env.OneOf("OTEL_TRACES_EXPORTER", "otlp", "otlp", "none")
	c.Protocol = env.OneOf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.OneOf("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolGRPC, ProtocolGRPC, ProtocolHTTP),
		ProtocolGRPC, ProtocolHTTP)
	// The traces endpoint is used as it is; the generic one is a base URL to which the HTTP exporter
	// appends the signal's path (the OTLP exporter specification).
	if v, ok := env.Lookup("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); ok {
		c.Endpoint = checkURL(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v)
	} else if v, ok := env.Lookup("OTEL_EXPORTER_OTLP_ENDPOINT"); ok {
		c.Endpoint = checkURL(env, "OTEL_EXPORTER_OTLP_ENDPOINT", v)
		if c.Endpoint != "" && c.Protocol == ProtocolHTTP {
			c.Endpoint = strings.TrimSuffix(c.Endpoint, "/") + "/v1/traces"
		}
	}
	c.Headers = pairs(env, "OTEL_EXPORTER_OTLP_HEADERS", nil, true)
	c.Headers = pairs(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", c.Headers, true)
	c.Attributes = pairs(env, "OTEL_RESOURCE_ATTRIBUTES", nil, false)
	c.Sampler = env.OneOf("OTEL_TRACES_SAMPLER", samplers[0], samplers...)
	c.SamplerArg = 1
	if v, ok := env.Lookup("OTEL_TRACES_SAMPLER_ARG"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			env.Fail("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1")
		} else {
			c.SamplerArg = f
		}
	}
	c.Export = !disabled && exporter == "otlp" && c.Endpoint != ""
	return c
}

// checkURL returns v when it is an http or https URL with a host, and reports it otherwise.
func checkURL(env *config.Env, name, v string) string {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		env.Fail(name, "must be an http:// or https:// URL, such as http://localhost:4317")
		return ""
	}
	return v
}

// pairs reads a list of key=value pairs separated by commas, with URL-encoded values (the format of
// OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES), added to into. The error never quotes the
// value: headers hold credentials. Headers are checked to be sendable.
func pairs(env *config.Env, name string, into map[string]string, headers bool) map[string]string {
	v, ok := env.Lookup(name)
	if !ok {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	for i, item := range strings.Split(v, ",") {
		k, val, found := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !found || k == "" {
			env.Fail(name, fmt.Sprintf("item %d is not key=value", i+1))
			continue
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			env.Fail(name, fmt.Sprintf("the value of item %d is not URL-encoded", i+1))
			continue
		}
		// Checked here, at start-up, rather than by the transport at every export, which would only
		// log a failure a minute: a name gRPC metadata and HTTP both accept, a value of printable ASCII
		// (a line break or NUL would split or end the header).
		if headers && (!headerName(k) || !printable(dec)) {
			env.Fail(name, fmt.Sprintf("item %d is not a valid header: names of letters, digits, '-', '_' and '.'; values of printable ASCII", i+1))
			continue
		}
		into[k] = dec
	}
	return into
}

// headerName reports whether k is a header name that gRPC metadata (which lower-cases it) and HTTP both
// accept.
func headerName(k string) bool {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return k != ""
}

// printable reports whether v is printable ASCII, what a gRPC metadata value may hold.
func printable(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
