package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/sergas/core/gen/openapi"
)

// routeTable knows, for every REST route grpc-gateway serves, which query parameters it reads. It is built
// from the generated OpenAPI document (protoc-gen-openapiv2 applies the same rules as the generated
// handlers: no query parameters on a route whose body is "*", none for fields bound to the path) and the
// request messages' descriptors, so it follows the contracts without a list kept by hand.
type routeTable struct {
	routes map[string]routeSpec // by routeKey
	// methods are the HTTP methods some route answers, the candidates for an Allow header.
	methods []string
	// streams are the routes of server-streaming RPCs, by routeKey of their path (see serveStream).
	streams map[string]bool
}

type routeSpec struct {
	input protoreflect.MessageDescriptor
	query map[string]bool // proto field paths, such as "page_size"
}

// pathVar matches a path template variable in either spelling: "{connectionId}" (OpenAPI) or
// "{connection_id=*}" (runtime.Pattern.String).
var pathVar = regexp.MustCompile(`\{[^}]*\}`)

func routeKey(method, template string) string {
	return method + " " + pathVar.ReplaceAllString(template, "{}")
}

// buildRoutes reads the OpenAPI document's operations for the given gRPC services. An operation whose id
// names no RPC of those services (the raw webhook ingress) is not a grpc-gateway route and is skipped.
func buildRoutes(services []string) (*routeTable, error) {
	inputs := map[string]protoreflect.MessageDescriptor{} // by OpenAPI operation id, "TokenService_GetConnection"
	streaming := map[string]bool{}                        // the same ids, for server-streaming RPCs
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is not a service", name)
		}
		for i := range sd.Methods().Len() {
			m := sd.Methods().Get(i)
			inputs[string(sd.Name())+"_"+string(m.Name())] = m.Input()
			streaming[string(sd.Name())+"_"+string(m.Name())] = m.IsStreamingServer()
		}
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	t := &routeTable{routes: map[string]routeSpec{}, streams: map[string]bool{}}
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			input, ok := inputs[op.OperationID]
			if !ok {
				continue
			}
			method = strings.ToUpper(method)
			spec := routeSpec{input: input, query: map[string]bool{}}
			for _, p := range op.Parameters {
				if p.In != "query" {
					continue
				}
				field, ok := fieldPath(input, p.Name)
				if !ok {
					return nil, fmt.Errorf("OpenAPI %s %s: query parameter %q is not a field of %s", method, path, p.Name, input.FullName())
				}
				spec.query[field] = true
			}
			t.routes[routeKey(method, path)] = spec
			if streaming[op.OperationID] {
				// isStream compares the request's path itself: a variable would need the router's matching.
				if pathVar.MatchString(path) {
					return nil, fmt.Errorf("OpenAPI %s %s: a streaming route with path variables is not supported", method, path)
				}
				t.streams[routeKey(method, path)] = true
			}
			if !seen[method] {
				seen[method] = true
				t.methods = append(t.methods, method)
			}
		}
	}
	slices.Sort(t.methods)
	return t, nil
}

// fieldPath resolves a query key ("pageSize", "page_size", "filter.startTime") against msg the way
// grpc-gateway's query parser does (each segment by proto name, then by JSON name; only singular
// messages have sub-fields) and returns it in proto names.
func fieldPath(msg protoreflect.MessageDescriptor, key string) (string, bool) {
	segs := strings.Split(key, ".")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		if msg == nil {
			return "", false
		}
		f := msg.Fields().ByTextName(s)
		if f == nil {
			f = msg.Fields().ByJSONName(s)
		}
		if f == nil {
			return "", false
		}
		out = append(out, string(f.Name()))
		if i < len(segs)-1 {
			if f.Message() == nil || f.Cardinality() == protoreflect.Repeated {
				return "", false
			}
			msg = f.Message()
		}
	}
	return strings.Join(out, "."), true
}

// mapKey matches the map syntax of query keys, "labels[env]".
var mapKey = regexp.MustCompile(`^(.*)\[(.*)\]$`)

// checkQuery refuses a query parameter that the matched route does not read: grpc-gateway would ignore
// it, and the README promises that unknown fields are refused rather than ignored. A route missing from
// the table accepts no query parameters at all.
func (t *routeTable) checkQuery(r *http.Request, values url.Values) error {
	var spec routeSpec
	if pat, ok := runtime.HTTPPattern(r.Context()); ok {
		var found bool
		if spec, found = t.routes[routeKey(r.Method, pat.String())]; !found && r.Method == http.MethodPost {
			// With GATEWAY_HTTP_METHOD_OVERRIDE, a form POST is served by the GET route and keeps its method.
			spec = t.routes[routeKey(http.MethodGet, pat.String())]
		}
	}
	for key := range values {
		name := key
		if m := mapKey.FindStringSubmatch(key); m != nil {
			name = m[1]
		}
		if spec.input != nil {
			if field, ok := fieldPath(spec.input, name); ok && spec.query[field] {
				continue
			}
		}
		return fmt.Errorf("unknown query parameter %q", truncate(key, 64))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
