package deploy

import (
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"
)

// selects reports whether a LabelSelector selects labels; {} selects everything, nil nothing.
func selects(sel any, labels map[string]any) bool {
	m, ok := sel.(map[string]any)
	if !ok {
		return false
	}
	ml, _ := dig(m, "matchLabels").(map[string]any)
	for k, v := range ml {
		if labels[k] != v {
			return false
		}
	}
	exprs, _ := dig(m, "matchExpressions").([]any)
	for _, e := range exprs {
		v, has := labels[fmtString(dig(e, "key"))]
		values, _ := dig(e, "values").([]any)
		var ok bool
		switch dig(e, "operator") {
		case "In":
			ok = has && slices.Contains(values, v)
		case "NotIn":
			ok = !has || !slices.Contains(values, v)
		case "Exists":
			ok = has
		case "DoesNotExist":
			ok = !has
		}
		if !ok {
			return false
		}
	}
	return true
}

// k8sPeer is one end of a connection: a pod (labels set) in a namespace, or an address outside the
// cluster (ip set, labels nil).
type k8sPeer struct {
	ns     string
	labels map[string]any
	ip     string
	pod    *k8sPod // a rendered pod, for its named ports
}

func k8sPodPeer(p *k8sPod) k8sPeer { return k8sPeer{ns: "sergas", labels: p.labels, pod: p} }

func k8sOtherPod(ns string, labels map[string]any) k8sPeer { return k8sPeer{ns: ns, labels: labels} }

// k8sPeerMatches applies a NetworkPolicy peer (podSelector, namespaceSelector, ipBlock) of a policy in
// namespace sergas to x.
func k8sPeerMatches(peer any, x k8sPeer) bool {
	if block := dig(peer, "ipBlock"); block != nil {
		if x.ip == "" {
			return false
		}
		addr := netip.MustParseAddr(x.ip)
		if !netip.MustParsePrefix(fmtString(dig(block, "cidr"))).Contains(addr) {
			return false
		}
		for _, ex := range anyStrings(dig(block, "except")) {
			if netip.MustParsePrefix(ex).Contains(addr) {
				return false
			}
		}
		return true
	}
	if x.labels == nil {
		return false
	}
	nsSel, podSel := dig(peer, "namespaceSelector"), dig(peer, "podSelector")
	if nsSel == nil && x.ns != "sergas" {
		return false
	}
	if nsSel != nil && !selects(nsSel, map[string]any{"kubernetes.io/metadata.name": x.ns}) {
		return false
	}
	return podSel == nil || selects(podSel, x.labels)
}

// k8sPortMatches applies a rule's ports to a connection to port/proto on dst.
func k8sPortMatches(ports any, dst k8sPeer, port int, proto string) bool {
	list, _ := ports.([]any)
	if len(list) == 0 {
		return true
	}
	for _, p := range list {
		pr := fmtString(dig(p, "protocol"))
		if pr == "" {
			pr = "TCP"
		}
		if pr != proto {
			continue
		}
		switch v := dig(p, "port").(type) {
		case nil:
			return true
		case int:
			if v == port {
				return true
			}
		case string:
			if dst.pod != nil && dst.pod.ports[v] == port {
				return true
			}
		}
	}
	return false
}

// k8sAllowed reports whether the rendered NetworkPolicies let src open a connection to port/proto on dst:
// the egress policies selecting src (if src is one of ours) and the ingress policies selecting dst (if it
// is) must each admit it, or select nothing.
func k8sAllowed(s k8sSet, src, dst k8sPeer, port int, proto string) bool {
	check := func(direction, rules, peers string, self, other k8sPeer) bool {
		if self.pod == nil {
			return true // not one of ours: no policy of this overlay applies
		}
		selected := false
		for _, np := range s.kind("NetworkPolicy") {
			types := anyStrings(dig(np, "spec", "policyTypes"))
			if !selects(dig(np, "spec", "podSelector"), self.labels) || !slices.Contains(types, direction) {
				continue
			}
			selected = true
			rs, _ := dig(np, "spec", rules).([]any)
			for _, r := range rs {
				ps, _ := dig(r, peers).([]any)
				match := len(ps) == 0
				for _, p := range ps {
					match = match || k8sPeerMatches(p, other)
				}
				if match && k8sPortMatches(dig(r, "ports"), dst, port, proto) {
					return true
				}
			}
		}
		return !selected
	}
	return check("Egress", "egress", "to", src, dst) && check("Ingress", "ingress", "from", dst, src)
}

// Only each service's callers in the code (the gateway; token and webhook to audit; webhook to token;
// audit to itself) and labelled agents reach a service's gRPC port; only the monitoring namespace reaches
// metrics; only the ingress controller and monitoring reach the gateway; in prod, egress allows what each
// pod needs (DNS, PostgreSQL, the services it calls, the public internet where it calls out) and no more.
func TestNetworkPolicies(t *testing.T) {
	for _, dir := range k8sOverlays {
		t.Run(dir, func(t *testing.T) {
			s := k8sRender(t, dir)
			pods := k8sPods(t, s)
			byName := map[string]*k8sPod{}
			for i := range pods {
				byName[pods[i].deployment] = &pods[i]
			}
			k8sCheckPolicySelectors(t, s, pods)
			// The calls the code makes: the gateway dials all three; a service with AUDIT_CLIENT_API_KEY dials the
			// audit service and one with TOKEN_CLIENT_API_KEY the token service (app.Platform.Start).
			calls := map[[2]string]bool{}
			for _, p := range pods {
				if p.binary == "sergas-gateway" {
					for _, to := range []string{"sergas-token", "sergas-audit", "sergas-webhook"} {
						calls[[2]string{p.deployment, to}] = true
					}
				}
				if p.env["AUDIT_CLIENT_API_KEY"] != nil {
					calls[[2]string{p.deployment, "sergas-audit"}] = true
				}
				if p.env["TOKEN_CLIENT_API_KEY"] != nil {
					calls[[2]string{p.deployment, "sergas-token"}] = true
				}
			}
			intruder := k8sOtherPod("sergas", map[string]any{"app": "intruder"})
			agent := k8sOtherPod("agents", map[string]any{"sergas.io/client": "true"})
			prometheus := k8sOtherPod("monitoring", map[string]any{"app.kubernetes.io/name": "prometheus"})
			for _, to := range []string{"sergas-token", "sergas-audit", "sergas-webhook"} {
				dst := k8sPodPeer(byName[to])
				grpc, metrics := byName[to].ports["grpc"], byName[to].ports["metrics"]
				for _, from := range pods {
					got := k8sAllowed(s, k8sPodPeer(byName[from.deployment]), dst, grpc, "TCP")
					if want := calls[[2]string{from.deployment, to}]; got != want {
						t.Errorf("%s -> %s gRPC: allowed %v, but the code calls it: %v", from.deployment, to, got, want)
					}
				}
				if k8sAllowed(s, intruder, dst, grpc, "TCP") || k8sAllowed(s, intruder, dst, metrics, "TCP") {
					t.Errorf("an unlabelled pod in the namespace reaches %s", to)
				}
				if !k8sAllowed(s, agent, dst, grpc, "TCP") || k8sAllowed(s, agent, dst, metrics, "TCP") {
					t.Errorf("%s: a labelled agent should reach the gRPC port and not metrics", to)
				}
				if !k8sAllowed(s, prometheus, dst, metrics, "TCP") || k8sAllowed(s, prometheus, dst, grpc, "TCP") {
					t.Errorf("%s: Prometheus should reach the metrics port and not gRPC", to)
				}
				for _, from := range pods {
					if k8sAllowed(s, k8sPodPeer(byName[from.deployment]), dst, metrics, "TCP") {
						t.Errorf("%s reaches %s's metrics port", from.deployment, to)
					}
				}
			}
			gw := k8sPodPeer(byName["sergas-gateway"])
			http := byName["sergas-gateway"].ports["http"]
			if !k8sAllowed(s, k8sOtherPod("ingress-nginx", map[string]any{"app": "controller"}), gw, http, "TCP") ||
				!k8sAllowed(s, prometheus, gw, http, "TCP") {
				t.Error("the ingress controller and Prometheus cannot reach the gateway")
			}
			if k8sAllowed(s, intruder, gw, http, "TCP") || k8sAllowed(s, k8sOtherPod("default", map[string]any{}), gw, http, "TCP") || k8sAllowed(s, agent, gw, http, "TCP") {
				t.Error("pods other than the ingress controller reach the gateway, whose X-Forwarded-For they could forge")
			}
			if dir == "k8s/overlays/prod" {
				k8sCheckEgress(t, s, pods, byName)
			}
		})
	}
}

// k8sCheckPolicySelectors checks that every policy selects pods and names only pods that exist, and that
// no rule opens a gRPC port to an address range or to whole namespaces.
func k8sCheckPolicySelectors(t *testing.T, s k8sSet, pods []k8sPod) {
	names := []any{}
	for _, p := range pods {
		names = append(names, p.deployment)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["key"] == "app.kubernetes.io/name" {
				for _, n := range dig(x, "values").([]any) {
					if !slices.Contains(names, n) {
						t.Errorf("a NetworkPolicy names pods %v, which no Deployment has", n)
					}
				}
			}
			if n, ok := dig(x, "matchLabels", "app.kubernetes.io/name").(string); ok && !slices.Contains(names, any(n)) {
				t.Errorf("a NetworkPolicy names pods %v, which no Deployment has", n)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	for _, np := range s.kind("NetworkPolicy") {
		selected := false
		for _, p := range pods {
			selected = selected || selects(dig(np, "spec", "podSelector"), p.labels)
		}
		if !selected {
			t.Errorf("NetworkPolicy %s selects no pod", k8sName(np))
		}
		walk(np["spec"])
		rules, _ := dig(np, "spec", "ingress").([]any)
		for _, r := range rules {
			ports, _ := dig(r, "ports").([]any)
			grpc := len(ports) == 0
			for _, port := range ports {
				grpc = grpc || dig(port, "port") == "grpc"
			}
			if !grpc {
				continue
			}
			from, _ := dig(r, "from").([]any)
			if len(from) == 0 {
				t.Errorf("%s: a rule opens the gRPC port to everyone", k8sName(np))
			}
			for _, f := range from {
				if dig(f, "ipBlock") != nil {
					t.Errorf("%s: a rule opens the gRPC port to an address range", k8sName(np))
				}
				if sel, _ := dig(f, "podSelector").(map[string]any); dig(f, "namespaceSelector") != nil && len(sel) == 0 {
					t.Errorf("%s: a rule opens the gRPC port to every pod of some namespaces", k8sName(np))
				}
			}
		}
	}
}

func k8sCheckEgress(t *testing.T, s k8sSet, pods []k8sPod, byName map[string]*k8sPod) {
	dns := k8sOtherPod("kube-system", map[string]any{"k8s-app": "kube-dns"})
	public, private, metadata := k8sPeer{ip: "203.0.113.7"}, k8sPeer{ip: "10.20.0.5"}, k8sPeer{ip: "169.254.169.254"}
	intruder := k8sOtherPod("sergas", map[string]any{"app": "intruder"})
	for _, p := range pods {
		src := k8sPodPeer(byName[p.deployment])
		restricted := false
		for _, np := range s.kind("NetworkPolicy") {
			restricted = restricted || (selects(dig(np, "spec", "podSelector"), p.labels) && slices.Contains(anyStrings(dig(np, "spec", "policyTypes")), "Egress"))
		}
		if !restricted {
			t.Errorf("%s: no egress policy in prod", p.deployment)
			continue
		}
		if !k8sAllowed(s, src, dns, 53, "UDP") || !k8sAllowed(s, src, dns, 53, "TCP") {
			t.Errorf("%s: cannot resolve names (kube-dns, port 53)", p.deployment)
		}
		if k8sAllowed(s, src, intruder, 8080, "TCP") {
			t.Errorf("%s: reaches an arbitrary pod", p.deployment)
		}
		hasDB := p.binary != "sergas-gateway"
		for _, pg := range []k8sPeer{private, public} {
			if got := k8sAllowed(s, src, pg, 5432, "TCP"); got != hasDB {
				t.Errorf("%s: PostgreSQL at %s allowed %v, want %v", p.deployment, pg.ip, got, hasDB)
			}
		}
		// The token service calls OAuth providers over HTTPS; the webhook service pushes to any public
		// endpoint; neither reaches private or link-local addresses (cloud metadata) that way.
		wantHTTPS := p.binary == "sergas-token" || p.binary == "sergas-webhook"
		if got := k8sAllowed(s, src, public, 443, "TCP"); got != wantHTTPS {
			t.Errorf("%s: public HTTPS allowed %v, want %v", p.deployment, got, wantHTTPS)
		}
		if got := k8sAllowed(s, src, public, 8443, "TCP"); got != (p.binary == "sergas-webhook") {
			t.Errorf("%s: a public push endpoint on port 8443 allowed %v", p.deployment, got)
		}
		if k8sAllowed(s, src, private, 443, "TCP") || k8sAllowed(s, src, metadata, 80, "TCP") {
			t.Errorf("%s: reaches private or cloud metadata addresses", p.deployment)
		}
	}
}

// All four deployments take one CLIENT_ADDR_SECRET from one Secret key, in every overlay.
func TestClientAddrSecretShared(t *testing.T) {
	for _, dir := range k8sOverlays {
		s := k8sRender(t, dir)
		refs := map[string]any{}
		for _, p := range k8sPods(t, s) {
			refs[p.deployment] = dig(p.env["CLIENT_ADDR_SECRET"], "secretKeyRef")
		}
		gw := refs["sergas-gateway"]
		if len(refs) != 4 || gw == nil {
			t.Fatalf("%s: CLIENT_ADDR_SECRET references %v, want all four from a Secret", dir, refs)
		}
		for name, ref := range refs {
			if dig(ref, "name") != dig(gw, "name") || dig(ref, "key") != dig(gw, "key") {
				t.Errorf("%s: %s takes CLIENT_ADDR_SECRET from %v, the gateway from %v", dir, name, ref, gw)
			}
		}
	}
}

// Compose gives the gateway and every service the same CLIENT_ADDR_SECRET, a valid one.
func TestComposeSharesTheClientAddrSecret(t *testing.T) {
	services := docs(t, "compose.yaml")[0]["services"].(map[string]any)
	var want string
	for _, name := range []string{"gateway", "token", "audit", "webhook"} {
		v, _ := dig(services[name], "environment", "CLIENT_ADDR_SECRET").(string)
		if b, err := hex.DecodeString(v); err != nil || len(b) < 32 {
			t.Errorf("%s: CLIENT_ADDR_SECRET %q is not 32 bytes of hex", name, v)
		}
		if want == "" {
			want = v
		} else if v != want {
			t.Errorf("%s: CLIENT_ADDR_SECRET differs from the gateway's", name)
		}
	}
}
