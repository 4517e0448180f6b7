package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	auditv1 "github.com/sergas/core/gen/go/sergas/audit/v1"
	tokenv1 "github.com/sergas/core/gen/go/sergas/token/v1"
	webhookv1 "github.com/sergas/core/gen/go/sergas/webhook/v1"
	"github.com/sergas/core/internal/testutil"
)

// k8sOverlays are the kustomizations rendered and checked, as `kubectl apply -k` would render them.
var k8sOverlays = []string{"k8s/base", "k8s/overlays/dev", "k8s/overlays/prod"}

// k8sServes is the gRPC service each binary registers, whose name its readiness probe asks about.
var k8sServes = map[string]string{
	"sergas-token":   tokenv1.TokenService_ServiceDesc.ServiceName,
	"sergas-audit":   auditv1.AuditService_ServiceDesc.ServiceName,
	"sergas-webhook": webhookv1.WebhookService_ServiceDesc.ServiceName,
}

// k8sSet is one rendered kustomization.
type k8sSet struct {
	dir  string
	objs []map[string]any
}

func (s k8sSet) kind(kind string) []map[string]any {
	var out []map[string]any
	for _, o := range s.objs {
		if o["kind"] == kind {
			out = append(out, o)
		}
	}
	return out
}

func (s k8sSet) get(kind, name string) map[string]any {
	for _, o := range s.kind(kind) {
		if k8sName(o) == name {
			return o
		}
	}
	return nil
}

func k8sName(o any) string { n, _ := dig(o, "metadata", "name").(string); return n }

// k8sRendered caches each directory's rendering for the test binary's run.
var k8sRendered = map[string]k8sSet{}

// k8sRender runs kustomize build on dir (relative to deploy/).
func k8sRender(t *testing.T, dir string) k8sSet {
	t.Helper()
	kustomize := testutil.Tool(t, "kustomize")
	if s, ok := k8sRendered[dir]; ok {
		return s
	}
	cmd := exec.Command(kustomize, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	set := k8sSet{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: rendered output does not parse: %v", dir, err)
		}
		if d["apiVersion"] == nil || d["kind"] == nil || k8sName(d) == "" {
			t.Errorf("%s: a rendered object lacks apiVersion, kind or metadata.name", dir)
		}
		set.objs = append(set.objs, d)
	}
	if !t.Failed() {
		k8sRendered[dir] = set
	}
	return set
}

// k8sPod is a Deployment's pod template with what the checks need.
type k8sPod struct {
	deployment string
	dep        map[string]any
	spec       map[string]any
	labels     map[string]any
	binary     string // the container's command, without /usr/local/bin/
	container  map[string]any
	env        map[string]any // name -> value (string) or valueFrom (map), envFrom ConfigMaps included
	ports      map[string]int // container port name -> number
}

func k8sPods(t *testing.T, s k8sSet) []k8sPod {
	t.Helper()
	var out []k8sPod
	for _, d := range s.kind("Deployment") {
		p := k8sPod{deployment: k8sName(d), dep: d, env: map[string]any{}, ports: map[string]int{}}
		p.spec, _ = dig(d, "spec", "template", "spec").(map[string]any)
		p.labels, _ = dig(d, "spec", "template", "metadata", "labels").(map[string]any)
		containers, _ := dig(p.spec, "containers").([]any)
		if len(containers) != 1 {
			t.Errorf("%s %s: %d containers, want one", s.dir, p.deployment, len(containers))
			continue
		}
		p.container = containers[0].(map[string]any)
		cmd, _ := dig(p.container, "command", 0).(string)
		p.binary = strings.TrimPrefix(cmd, "/usr/local/bin/")
		envFrom, _ := dig(p.container, "envFrom").([]any)
		for _, ef := range envFrom {
			cm := s.get("ConfigMap", fmtString(dig(ef, "configMapRef", "name")))
			if cm == nil {
				t.Errorf("%s %s: envFrom names %v, which is not a rendered ConfigMap", s.dir, p.deployment, ef)
				continue
			}
			data, _ := cm["data"].(map[string]any)
			for k, v := range data {
				p.env[k] = v
			}
		}
		env, _ := dig(p.container, "env").([]any)
		for _, e := range env {
			if vf := dig(e, "valueFrom"); vf != nil {
				p.env[fmtString(dig(e, "name"))] = vf
			} else {
				p.env[fmtString(dig(e, "name"))] = fmtString(dig(e, "value"))
			}
		}
		ports, _ := dig(p.container, "ports").([]any)
		for _, port := range ports {
			n, _ := dig(port, "containerPort").(int)
			p.ports[fmtString(dig(port, "name"))] = n
		}
		out = append(out, p)
	}
	return out
}

func fmtString(v any) string { s, _ := v.(string); return s }

// k8sPortIs reports whether the probe or Service port (a number or a name) is one the pod declares.
func (p k8sPod) portNumber(port any) (int, bool) {
	switch v := port.(type) {
	case int:
		for _, n := range p.ports {
			if n == v {
				return v, true
			}
		}
	case string:
		n, ok := p.ports[v]
		return n, ok
	}
	return 0, false
}

// k8sAddrPort is the port of a ":50051"-style listen address.
func k8sAddrPort(addr string) int {
	_, port, _ := strings.Cut(addr, ":")
	n, err := strconv.Atoi(port)
	if err != nil {
		return -1
	}
	return n
}

// k8sSelects reports whether a Service's or PDB's selector (plain map or LabelSelector) selects labels.
func k8sSelects(sel any, labels map[string]any) bool {
	m, ok := sel.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	if _, isLS := m["matchLabels"]; !isLS && m["matchExpressions"] == nil {
		m = map[string]any{"matchLabels": m} // a Service's plain selector
	}
	return selects(m, labels)
}

// k8sImage matches the project image with a tag (not latest) or a digest, as kustomize's images: sets it.
var k8sImage = regexp.MustCompile(`^([a-z0-9.-]+(:\d+)?/)?([a-z0-9._-]+/)*sergas-core(:[\w][\w.-]{0,127})?(@sha256:[0-9a-f]{64})?$`)

// k8sGetRoutes are the gateway's GET routes, which its HTTP probes must use.
func k8sGetRoutes(t *testing.T) []string {
	raw, err := os.ReadFile("../services/gateway/gateway.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`HandleFunc\("GET (/[a-z]+)"`).FindAllStringSubmatch(string(raw), -1) {
		out = append(out, m[1])
	}
	return out
}

// k8sOperatorSecrets are the Secrets an operator creates (secret.example.yaml: name -> keys).
func k8sOperatorSecrets(t *testing.T) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, s := range docs(t, "k8s/secret.example.yaml") {
		out[k8sName(s)], _ = dig(s, "stringData").(map[string]any)
	}
	return out
}

// k8sSecretResolves checks that Secret name has key: rendered, or created by the operator from
// secret.example.yaml and listed in the overlay's README.md (base: in every overlay's).
func k8sSecretResolves(t *testing.T, s k8sSet, where, name, key string) {
	t.Helper()
	if sec := s.get("Secret", name); sec != nil {
		if dig(sec, "data", key) == nil && dig(sec, "stringData", key) == nil {
			t.Errorf("%s %s: rendered Secret %s has no key %s", s.dir, where, name, key)
		}
		return
	}
	keys, ok := k8sOperatorSecrets(t)[name]
	if !ok {
		t.Errorf("%s %s: Secret %s is neither rendered nor in secret.example.yaml", s.dir, where, name)
		return
	}
	if _, ok := keys[key]; !ok && key != "" {
		t.Errorf("%s %s: Secret %s has no key %s in secret.example.yaml", s.dir, where, name, key)
	}
	readmes := []string{filepath.Join(s.dir, "README.md")}
	if s.dir == "k8s/base" {
		readmes = []string{"k8s/overlays/dev/README.md", "k8s/overlays/prod/README.md"}
	}
	for _, r := range readmes {
		raw, err := os.ReadFile(r)
		if err != nil {
			t.Errorf("%s: %v (it lists the Secrets to create)", s.dir, err)
			continue
		}
		if !strings.Contains(string(raw), "`"+name+"`") || (key != "" && !strings.Contains(string(raw), "`"+key+"`")) {
			t.Errorf("%s %s: Secret %s (key %s) is created by the operator but %s does not list it", s.dir, where, name, key, r)
		}
	}
}

// Every overlay renders, and in each: images, commands, variables, secret and ConfigMap references,
// ports, probes, Services, endpoints between services and pod security agree with the code.
func TestRenderedManifests(t *testing.T) {
	vars, bins, routes := documented(t), builtBinaries(t), k8sGetRoutes(t)
	for _, dir := range k8sOverlays {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			s := k8sRender(t, dir)
			pods := k8sPods(t, s)
			var names []string
			for _, p := range pods {
				names = append(names, p.deployment)
			}
			slices.Sort(names)
			if want := []string{"sergas-audit", "sergas-gateway", "sergas-token", "sergas-webhook"}; !slices.Equal(names, want) {
				t.Fatalf("Deployments %v, want %v", names, want)
			}
			for _, cm := range s.kind("ConfigMap") {
				data, _ := cm["data"].(map[string]any)
				for k := range data {
					if !slices.Contains(vars, k) {
						t.Errorf("ConfigMap %s sets %s, which is not in the README's configuration table", k8sName(cm), k)
					}
				}
			}
			for _, p := range pods {
				k8sCheckPod(t, s, p, pods, vars, bins, routes)
			}
			k8sCheckServices(t, s, pods)
			if ns := s.get("Namespace", "sergas"); dig(ns, "metadata", "labels", "pod-security.kubernetes.io/enforce") != "restricted" {
				t.Error("namespace sergas does not enforce the restricted Pod Security Standard")
			}
			for _, obj := range s.objs {
				if ns := dig(obj, "metadata", "namespace"); obj["kind"] != "Namespace" && ns != "sergas" {
					t.Errorf("%s %s is in namespace %v, not sergas", obj["kind"], k8sName(obj), ns)
				}
				if dig(obj, "metadata", "labels", "app.kubernetes.io/part-of") != "sergas-core" {
					t.Errorf("%s %s lacks the label app.kubernetes.io/part-of=sergas-core", obj["kind"], k8sName(obj))
				}
			}
			for _, pvc := range s.kind("PersistentVolumeClaim") {
				if !slices.Contains(anyStrings(dig(pvc, "spec", "accessModes")), "ReadWriteOnce") {
					t.Errorf("PersistentVolumeClaim %s: want ReadWriteOnce (one node's block storage)", k8sName(pvc))
				}
			}
		})
	}
}

func k8sCheckPod(t *testing.T, s k8sSet, p k8sPod, pods []k8sPod, vars, bins, routes []string) {
	name, c := p.deployment, p.container
	if !k8sSelects(dig(p.dep, "spec", "selector"), p.labels) {
		t.Errorf("%s: the selector does not select its own pod template", name)
	}
	if p.labels["app.kubernetes.io/name"] != name {
		t.Errorf("%s: pods labelled app.kubernetes.io/name=%v, which the Services and policies select by", name, p.labels["app.kubernetes.io/name"])
	}
	// Image and command.
	img := fmtString(c["image"])
	if m := k8sImage.FindStringSubmatch(img); m == nil || (m[4] == "" && m[5] == "") || m[4] == ":latest" {
		t.Errorf("%s: image %q is not the project image (sergas-core) with a tag or digest", name, img)
	}
	if !slices.Contains(bins, "/usr/local/bin/"+p.binary) {
		t.Errorf("%s: command %v is not built into the image", name, c["command"])
	}
	// Pod and container security.
	if dig(p.spec, "automountServiceAccountToken") != false || dig(p.spec, "enableServiceLinks") != false {
		t.Errorf("%s: want automountServiceAccountToken and enableServiceLinks false", name)
	}
	psc := dig(p.spec, "securityContext")
	uid, _ := dig(psc, "runAsUser").(int)
	gid, _ := dig(psc, "runAsGroup").(int)
	if dig(psc, "runAsNonRoot") != true || uid <= 0 || gid <= 0 || dig(psc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: pod securityContext %v: want runAsNonRoot, numeric non-root runAsUser/runAsGroup, seccomp RuntimeDefault", name, psc)
	}
	csc := dig(c, "securityContext")
	if dig(csc, "readOnlyRootFilesystem") != true || dig(csc, "allowPrivilegeEscalation") != false ||
		!slices.Contains(anyStrings(dig(csc, "capabilities", "drop")), "ALL") || dig(csc, "capabilities", "add") != nil ||
		dig(csc, "privileged") == true {
		t.Errorf("%s: container securityContext %v: want a read-only root, no privilege escalation, every capability dropped", name, csc)
	}
	if u, ok := dig(csc, "runAsUser").(int); ok && u == 0 {
		t.Errorf("%s: container runs as root", name)
	}
	volumes := map[string]any{}
	vols, _ := dig(p.spec, "volumes").([]any)
	for _, v := range vols {
		volumes[fmtString(dig(v, "name"))] = v
		if sn := fmtString(dig(v, "secret", "secretName")); sn != "" {
			// Kubernetes' default 0644 lets every user read the keys; the pod's group (fsGroup) is enough.
			if mode, ok := dig(v, "secret", "defaultMode").(int); !ok || mode&0o007 != 0 {
				t.Errorf("%s: Secret volume %v has mode %v: want no access for others (e.g. 0440)", name, dig(v, "name"), dig(v, "secret", "defaultMode"))
			}
			items, _ := dig(v, "secret", "items").([]any)
			if len(items) == 0 {
				k8sSecretResolves(t, s, name+" volume "+fmtString(dig(v, "name")), sn, "")
			}
			for _, it := range items {
				k8sSecretResolves(t, s, name+" volume "+fmtString(dig(v, "name")), sn, fmtString(dig(it, "key")))
			}
		}
		if claim := fmtString(dig(v, "persistentVolumeClaim", "claimName")); claim != "" && s.get("PersistentVolumeClaim", claim) == nil {
			t.Errorf("%s: volume claims %s, which is not rendered", name, claim)
		}
	}
	tmp := false
	mounts, _ := dig(c, "volumeMounts").([]any)
	for _, m := range mounts {
		v, ok := volumes[fmtString(dig(m, "name"))]
		if !ok {
			t.Errorf("%s: mounts volume %v, which the pod does not have", name, dig(m, "name"))
		}
		tmp = tmp || (dig(m, "mountPath") == "/tmp" && dig(v, "emptyDir") != nil)
	}
	if !tmp {
		t.Errorf("%s: no emptyDir on /tmp: with a read-only root, SQLite and Go have nowhere for temporary files", name)
	}
	// Variables: documented, and references resolve.
	for k, v := range p.env {
		if !slices.Contains(vars, k) {
			t.Errorf("%s: variable %s is not in the README's configuration table", name, k)
		}
		vf, ok := v.(map[string]any)
		if !ok {
			continue
		}
		switch {
		case vf["secretKeyRef"] != nil:
			k8sSecretResolves(t, s, name+" "+k, fmtString(dig(vf, "secretKeyRef", "name")), fmtString(dig(vf, "secretKeyRef", "key")))
		case vf["configMapKeyRef"] != nil:
			if cm := s.get("ConfigMap", fmtString(dig(vf, "configMapKeyRef", "name"))); cm == nil || dig(cm, "data", fmtString(dig(vf, "configMapKeyRef", "key"))) == nil {
				t.Errorf("%s %s: configMapKeyRef %v does not resolve to a rendered ConfigMap key", name, k, vf)
			}
		case vf["fieldRef"] != nil, vf["resourceFieldRef"] != nil:
		default:
			t.Errorf("%s %s: unknown valueFrom %v", name, k, vf)
		}
	}
	// A variable naming a file (key files, sources, the signing key) names one the pod mounts.
	for k, v := range p.env {
		if path, ok := v.(string); ok && strings.HasPrefix(path, "/etc/") && !k8sFileMounted(t, s, p, path) {
			t.Errorf("%s: %s=%s, a file no volume of the pod provides", name, k, path)
		}
	}
	// Listen addresses are set and agree with the declared ports.
	listen := map[string]string{"grpc": "_GRPC_ADDR", "metrics": "_METRICS_ADDR"}
	prefix := strings.ToUpper(strings.TrimPrefix(p.binary, "sergas-"))
	if p.binary == "sergas-gateway" {
		listen = map[string]string{"http": "_HTTP_ADDR"}
	}
	for portName, suffix := range listen {
		addr, _ := p.env[prefix+suffix].(string)
		if n, ok := p.ports[portName]; !ok || k8sAddrPort(addr) != n {
			t.Errorf("%s: %s%s=%q but the container port %s is %d", name, prefix, suffix, addr, portName, n)
		}
	}
	// Probes target declared ports, the standard health service under the service's own name, and the
	// gateway's own routes.
	for _, kind := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		probe := dig(c, kind)
		if probe == nil {
			if kind != "startupProbe" {
				t.Errorf("%s: no %s", name, kind)
			}
			continue
		}
		switch {
		case dig(probe, "grpc") != nil:
			if _, ok := p.portNumber(dig(probe, "grpc", "port")); !ok || dig(probe, "grpc", "port") != p.ports["grpc"] {
				t.Errorf("%s: %s targets gRPC port %v, the container serves gRPC on %d", name, kind, dig(probe, "grpc", "port"), p.ports["grpc"])
			}
			svc := fmtString(dig(probe, "grpc", "service"))
			if kind == "readinessProbe" && svc != k8sServes[p.binary] {
				t.Errorf("%s: readiness asks about %q, the binary serves %q", name, svc, k8sServes[p.binary])
			}
		case dig(probe, "httpGet") != nil:
			if _, ok := p.portNumber(dig(probe, "httpGet", "port")); !ok {
				t.Errorf("%s: %s targets port %v, which the container does not declare", name, kind, dig(probe, "httpGet", "port"))
			}
			if path := fmtString(dig(probe, "httpGet", "path")); !slices.Contains(routes, path) {
				t.Errorf("%s: %s asks %s, not a GET route of the gateway (%v)", name, kind, path, routes)
			}
		default:
			t.Errorf("%s: %s is neither a gRPC nor an HTTP probe", name, kind)
		}
	}
	if p.binary == "sergas-gateway" && (dig(c, "readinessProbe", "httpGet", "path") != "/readyz" || dig(c, "livenessProbe", "httpGet", "path") != "/healthz") {
		t.Errorf("%s: want readiness /readyz and liveness /healthz", name)
	}
	// The grace period covers the preStop pause and SHUTDOWN_TIMEOUT.
	shutdown, err := time.ParseDuration(fmtString(p.env["SHUTDOWN_TIMEOUT"]))
	if err != nil {
		t.Errorf("%s: SHUTDOWN_TIMEOUT %v is not set as a duration", name, p.env["SHUTDOWN_TIMEOUT"])
	}
	pause, _ := dig(c, "lifecycle", "preStop", "sleep", "seconds").(int)
	if g, _ := dig(p.spec, "terminationGracePeriodSeconds").(int); time.Duration(g)*time.Second <= shutdown+time.Duration(pause)*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %d does not exceed SHUTDOWN_TIMEOUT %s plus the preStop pause %ds", name, g, shutdown, pause)
	}
	// Whoever calls another service is told where it is: unset, the endpoint defaults to localhost, which
	// in a pod is the caller itself (the gateway calls all three; a service with AUDIT_CLIENT_API_KEY the
	// audit service, with TOKEN_CLIENT_API_KEY the token service). The audit service may call itself there.
	need := map[string]bool{"AUDIT_GRPC_ENDPOINT": p.env["AUDIT_CLIENT_API_KEY"] != nil, "TOKEN_GRPC_ENDPOINT": p.env["TOKEN_CLIENT_API_KEY"] != nil}
	if p.binary == "sergas-gateway" {
		need = map[string]bool{"AUDIT_GRPC_ENDPOINT": true, "TOKEN_GRPC_ENDPOINT": true, "WEBHOOK_GRPC_ENDPOINT": true}
	}
	for k, needed := range need {
		if needed && p.env[k] == nil && k != prefix+"_GRPC_ENDPOINT" {
			t.Errorf("%s: %s unset, so it would dial localhost", name, k)
		}
	}
	// Endpoints of other services name a headless Service on the right pod's gRPC port.
	for k, v := range p.env {
		if !strings.HasSuffix(k, "_GRPC_ENDPOINT") {
			continue
		}
		target := "sergas-" + strings.ToLower(strings.TrimSuffix(k, "_GRPC_ENDPOINT"))
		if _, _, ok := k8sEndpoint(t, s, pods, fmtString(v), target); !ok {
			t.Errorf("%s: %s=%v does not reach %s's gRPC port through a headless Service", name, k, v, target)
		}
	}
}

// k8sFileMounted reports whether path is a file of a Secret volume the container mounts: an item's path,
// or, without items, a key of the Secret (rendered or from secret.example.yaml).
func k8sFileMounted(t *testing.T, s k8sSet, p k8sPod, path string) bool {
	mounts, _ := dig(p.container, "volumeMounts").([]any)
	vols, _ := dig(p.spec, "volumes").([]any)
	for _, m := range mounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(fmtString(dig(m, "mountPath")), "/")+"/")
		if !ok {
			continue
		}
		for _, v := range vols {
			if dig(v, "name") != dig(m, "name") || dig(v, "secret") == nil {
				continue
			}
			if items, _ := dig(v, "secret", "items").([]any); len(items) > 0 {
				for _, it := range items {
					if dig(it, "path") == rel {
						return true
					}
				}
				return false
			}
			secret := fmtString(dig(v, "secret", "secretName"))
			if sec := s.get("Secret", secret); sec != nil {
				return dig(sec, "data", rel) != nil || dig(sec, "stringData", rel) != nil
			}
			_, ok := k8sOperatorSecrets(t)[secret][rel]
			return ok
		}
	}
	return false
}

// k8sEndpoint resolves a dns:///service:port endpoint to the pod behind it and its container port, and
// reports whether that pod runs binary and the port is its gRPC port.
func k8sEndpoint(t *testing.T, s k8sSet, pods []k8sPod, endpoint, binary string) (k8sPod, int, bool) {
	m := regexp.MustCompile(`^dns:///([a-z0-9-]+):(\d+)$`).FindStringSubmatch(endpoint)
	if m == nil {
		return k8sPod{}, 0, false
	}
	svc := s.get("Service", m[1])
	if svc == nil || dig(svc, "spec", "clusterIP") != "None" {
		return k8sPod{}, 0, false
	}
	ports, _ := dig(svc, "spec", "ports").([]any)
	for _, port := range ports {
		if dig(port, "port") != atoi(m[2]) {
			continue
		}
		for _, p := range pods {
			if !k8sSelects(dig(svc, "spec", "selector"), p.labels) {
				continue
			}
			n, ok := p.portNumber(dig(port, "targetPort"))
			return p, n, ok && p.binary == binary && n == p.ports["grpc"]
		}
	}
	return k8sPod{}, 0, false
}

// Every Service selects a Deployment's pods and targets ports they declare.
func k8sCheckServices(t *testing.T, s k8sSet, pods []k8sPod) {
	for _, svc := range s.kind("Service") {
		name := k8sName(svc)
		var selected []k8sPod
		for _, p := range pods {
			if k8sSelects(dig(svc, "spec", "selector"), p.labels) {
				selected = append(selected, p)
			}
		}
		if len(selected) == 0 {
			t.Errorf("Service %s selects no Deployment's pods", name)
		}
		ports, _ := dig(svc, "spec", "ports").([]any)
		for _, port := range ports {
			for _, p := range selected {
				if _, ok := p.portNumber(dig(port, "targetPort")); !ok {
					t.Errorf("Service %s port %v targets %v, which %s does not declare", name, dig(port, "name"), dig(port, "targetPort"), p.deployment)
				}
			}
		}
	}
}

// The dev overlay runs one replica of everything on SQLite files on volumes, replaced with Recreate.
func TestRenderedDevOverlay(t *testing.T) {
	s := k8sRender(t, "k8s/overlays/dev")
	for _, p := range k8sPods(t, s) {
		if r, _ := dig(p.dep, "spec", "replicas").(int); r != 1 {
			t.Errorf("%s: %d replicas, want 1", p.deployment, r)
		}
		if p.binary == "sergas-gateway" {
			continue
		}
		if dig(p.dep, "spec", "strategy", "type") != "Recreate" {
			t.Errorf("%s: strategy %v: a rolling update would open the SQLite file from two pods", p.deployment, dig(p.dep, "spec", "strategy"))
		}
		prefix := strings.ToUpper(strings.TrimPrefix(p.binary, "sergas-"))
		url, _ := p.env[prefix+"_DATABASE_URL"].(string)
		path, ok := strings.CutPrefix(url, "sqlite:///")
		if !ok {
			t.Errorf("%s: %s_DATABASE_URL %q is not an absolute SQLite URL", p.deployment, prefix, url)
			continue
		}
		if p.env["DATABASE_URL"] != nil {
			t.Errorf("%s: DATABASE_URL set in dev", p.deployment)
		}
		onClaim := false
		mounts, _ := dig(p.container, "volumeMounts").([]any)
		vols, _ := dig(p.spec, "volumes").([]any)
		for _, m := range mounts {
			dir := strings.TrimPrefix(fmtString(dig(m, "mountPath")), "/")
			if !strings.HasPrefix(path, dir+"/") {
				continue
			}
			for _, v := range vols {
				if dig(v, "name") == dig(m, "name") && dig(v, "persistentVolumeClaim", "claimName") != nil && dig(m, "readOnly") != true {
					onClaim = true
				}
			}
		}
		if !onClaim {
			t.Errorf("%s: the SQLite file %s is not on a writable PersistentVolumeClaim", p.deployment, url)
		}
	}
	for _, kind := range []string{"HorizontalPodAutoscaler", "PodDisruptionBudget"} {
		if len(s.kind(kind)) != 0 {
			t.Errorf("dev renders a %s: one SQLite replica can neither scale nor keep one pod up through a drain", kind)
		}
	}
}

// The prod overlay runs several replicas on PostgreSQL (DATABASE_URL from the operator's Secret), with a
// disruption budget, an autoscaler and a ServiceMonitor per Deployment, within PostgreSQL's connections.
func TestRenderedProdOverlay(t *testing.T) {
	s := k8sRender(t, "k8s/overlays/prod")
	pods := k8sPods(t, s)
	budget := 0
	for _, p := range pods {
		replicas, _ := dig(p.dep, "spec", "replicas").(int)
		if replicas < 2 {
			t.Errorf("%s: %d replica(s), want several", p.deployment, replicas)
		}
		var hpa map[string]any
		for _, h := range s.kind("HorizontalPodAutoscaler") {
			if dig(h, "spec", "scaleTargetRef", "kind") == "Deployment" && dig(h, "spec", "scaleTargetRef", "name") == p.deployment {
				hpa = h
			}
		}
		minR, _ := dig(hpa, "spec", "minReplicas").(int)
		maxR, _ := dig(hpa, "spec", "maxReplicas").(int)
		if hpa == nil || minR < 2 || maxR < minR || minR > replicas {
			t.Errorf("%s: autoscaler %v: want one with 2 <= minReplicas <= replicas (%d) <= maxReplicas", p.deployment, dig(hpa, "spec"), replicas)
		}
		if dig(p.container, "resources", "requests", "cpu") == nil {
			t.Errorf("%s: no CPU request, which a CPU autoscaler measures against", p.deployment)
		}
		pdbs := 0
		for _, b := range s.kind("PodDisruptionBudget") {
			if k8sSelects(dig(b, "spec", "selector"), p.labels) {
				pdbs++
				maxU, _ := dig(b, "spec", "maxUnavailable").(int)
				minA, isInt := dig(b, "spec", "minAvailable").(int)
				if (maxU < 1 && !isInt) || (isInt && minA >= minR) {
					t.Errorf("%s: PodDisruptionBudget %s allows no eviction at %d replicas", p.deployment, k8sName(b), minR)
				}
			}
		}
		if pdbs != 1 {
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", p.deployment, pdbs)
		}
		k8sCheckServiceMonitor(t, s, p)
		if p.binary == "sergas-gateway" {
			if p.env["DATABASE_URL"] != nil {
				t.Errorf("%s: the gateway has no database, yet gets DATABASE_URL", p.deployment)
			}
			continue
		}
		prefix := strings.ToUpper(strings.TrimPrefix(p.binary, "sergas-"))
		ref := dig(p.env["DATABASE_URL"], "secretKeyRef")
		if ref == nil || p.env[prefix+"_DATABASE_URL"] != nil {
			t.Errorf("%s: want DATABASE_URL from a Secret and no %s_DATABASE_URL (which would win)", p.deployment, prefix)
		}
		for k, v := range p.env {
			if str, ok := v.(string); ok && strings.Contains(str, "sqlite:") {
				t.Errorf("%s: %s=%s is SQLite in prod", p.deployment, k, str)
			}
		}
		// Connections this service's pods may hold at the autoscaler's maximum (see config.yaml).
		pool, _ := strconv.Atoi(fmtString(p.env["DATABASE_POOL_SIZE"]))
		overflow, _ := strconv.Atoi(fmtString(p.env["DATABASE_MAX_OVERFLOW"]))
		if pool == 0 {
			t.Errorf("%s: DATABASE_POOL_SIZE unset: the default (10+10) at %d replicas exceeds PostgreSQL's connections", p.deployment, maxR)
		}
		budget += maxR * (pool + overflow + k8sLeaderJobs(t, strings.TrimPrefix(p.binary, "sergas-")))
	}
	if len(s.kind("PersistentVolumeClaim")) != 0 {
		t.Error("prod renders a PersistentVolumeClaim: state lives in PostgreSQL")
	}
	// PostgreSQL's default max_connections is 100; leave ten for sergasctl and superusers.
	if budget > 90 {
		t.Errorf("at the autoscalers' maxima the services may open %d PostgreSQL connections, more than 90", budget)
	}
	t.Logf("PostgreSQL connections at the autoscalers' maxima: %d", budget)
}

// k8sLeaderJobs counts a service's leader-elected workers, each of which holds a PostgreSQL connection of
// its own on the replica that leads it.
func k8sLeaderJobs(t *testing.T, service string) int {
	files, _ := filepath.Glob(filepath.Join("..", "services", service, "*.go"))
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(raw), "SingleReplica: true")
	}
	return n
}

// k8sCheckServiceMonitor checks that one ServiceMonitor scrapes p's metrics: through a Service selecting
// p's pods, on the port serving /metrics (the metrics port, or the gateway's HTTP port).
func k8sCheckServiceMonitor(t *testing.T, s k8sSet, p k8sPod) {
	want := "metrics"
	if p.binary == "sergas-gateway" {
		want = "http"
	}
	found := 0
	for _, sm := range s.kind("ServiceMonitor") {
		if dig(sm, "apiVersion") != "monitoring.coreos.com/v1" {
			t.Errorf("ServiceMonitor %s: apiVersion %v", k8sName(sm), dig(sm, "apiVersion"))
		}
		for _, svc := range s.kind("Service") {
			labels, _ := dig(svc, "metadata", "labels").(map[string]any)
			if !k8sSelects(dig(sm, "spec", "selector"), labels) || !k8sSelects(dig(svc, "spec", "selector"), p.labels) {
				continue
			}
			endpoints, _ := dig(sm, "spec", "endpoints").([]any)
			for _, e := range endpoints {
				ports, _ := dig(svc, "spec", "ports").([]any)
				for _, port := range ports {
					if dig(port, "name") != dig(e, "port") {
						continue
					}
					n, _ := p.portNumber(dig(port, "targetPort"))
					if n == p.ports[want] && dig(e, "path") == "/metrics" {
						found++
					}
				}
			}
		}
	}
	if found != 1 {
		t.Errorf("%s: %d ServiceMonitor endpoints scrape /metrics on its %s port, want 1", p.deployment, found, want)
	}
}
