package deploy

import (
	"encoding/hex"
	"path/filepath"
	"slices"
	"testing"
)

// manifests are the kustomization's documents, by kind.
func manifests(t *testing.T) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, r := range docs(t, "k8s/kustomization.yaml")[0]["resources"].([]any) {
		for _, d := range docs(t, filepath.Join("k8s", r.(string))) {
			k, _ := d["kind"].(string)
			out[k] = append(out[k], d)
		}
	}
	return out
}

// selects reports whether a label selector (matchLabels and In expressions) selects labels; nil selects
// nothing, {} everything.
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
		if dig(e, "operator") != "In" || !slices.Contains(dig(e, "values").([]any), labels[dig(e, "key").(string)]) {
			return false
		}
	}
	return true
}

// Only the gateway, the services themselves and labelled clients reach the services' gRPC ports, and only
// the ingress namespace reaches the gateway, which believes X-Forwarded-For from it.
func TestNetworkPolicies(t *testing.T) {
	m := manifests(t)
	pods := map[string]map[string]any{} // deployment name -> pod labels
	for _, d := range m["Deployment"] {
		pods[dig(d, "metadata", "name").(string)] = dig(d, "spec", "template", "metadata", "labels").(map[string]any)
	}
	policyFor := func(name string) map[string]any {
		for _, p := range m["NetworkPolicy"] {
			if selects(dig(p, "spec", "podSelector"), pods[name]) {
				return p
			}
		}
		return nil
	}
	for _, svc := range []string{"sergas-token", "sergas-audit", "sergas-webhook"} {
		p := policyFor(svc)
		if p == nil {
			t.Errorf("%s: no NetworkPolicy selects its pods", svc)
			continue
		}
		if !slices.Contains(dig(p, "spec", "policyTypes").([]any), "Ingress") {
			t.Errorf("%s: policy does not restrict ingress", svc)
		}
		gatewayAllowed := false
		for _, r := range dig(p, "spec", "ingress").([]any) {
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
				t.Errorf("%s: a rule opens the gRPC port to everyone", svc)
			}
			for _, f := range from {
				if dig(f, "ipBlock") != nil {
					t.Errorf("%s: a rule opens the gRPC port to an address range", svc)
				}
				if dig(f, "namespaceSelector") == nil && selects(dig(f, "podSelector"), pods["sergas-gateway"]) {
					gatewayAllowed = true
				}
				if dig(f, "namespaceSelector") != nil {
					if sel, _ := dig(f, "podSelector").(map[string]any); len(sel) == 0 {
						t.Errorf("%s: a rule opens the gRPC port to every pod of some namespaces", svc)
					}
				}
			}
		}
		if !gatewayAllowed {
			t.Errorf("%s: the gateway cannot reach the gRPC port", svc)
		}
	}
	if p := policyFor("sergas-gateway"); p == nil {
		t.Error("sergas-gateway: no NetworkPolicy, yet it believes X-Forwarded-For from GATEWAY_TRUSTED_PROXIES")
	}
	// Every gRPC port a rule names by name exists on the selected containers.
	for _, d := range m["Deployment"] {
		name := dig(d, "metadata", "name").(string)
		if name == "sergas-gateway" {
			continue
		}
		named := false
		for _, p := range dig(d, "spec", "template", "spec", "containers", 0, "ports").([]any) {
			named = named || dig(p, "name") == "grpc"
		}
		if !named {
			t.Errorf("%s: no container port named grpc, which the NetworkPolicy refers to", name)
		}
	}
}

// Every Secret a manifest refers to (environment and volumes) exists in secret.example.yaml with the keys
// used, and all four deployments share one CLIENT_ADDR_SECRET.
func TestSecretReferencesResolve(t *testing.T) {
	secrets := map[string]map[string]any{}
	for _, s := range docs(t, "k8s/secret.example.yaml") {
		secrets[dig(s, "metadata", "name").(string)] = dig(s, "stringData").(map[string]any)
	}
	check := func(where, name, key string) {
		if keys, ok := secrets[name]; !ok {
			t.Errorf("%s: Secret %s is not in secret.example.yaml", where, name)
		} else if _, ok := keys[key]; !ok {
			t.Errorf("%s: Secret %s has no key %s in secret.example.yaml", where, name, key)
		}
	}
	addrRefs := map[string]string{}
	for _, d := range manifests(t)["Deployment"] {
		name := dig(d, "metadata", "name").(string)
		c := dig(d, "spec", "template", "spec", "containers", 0)
		env, _ := dig(c, "env").([]any)
		for _, e := range env {
			ref := dig(e, "valueFrom", "secretKeyRef")
			if ref == nil {
				continue
			}
			s, k := dig(ref, "name").(string), dig(ref, "key").(string)
			check(name+" "+dig(e, "name").(string), s, k)
			if dig(e, "name") == "CLIENT_ADDR_SECRET" {
				addrRefs[name] = s + "/" + k
			}
		}
		vols, _ := dig(d, "spec", "template", "spec", "volumes").([]any)
		for _, v := range vols {
			s, _ := dig(v, "secret", "secretName").(string)
			if s == "" {
				continue
			}
			items, _ := dig(v, "secret", "items").([]any)
			for _, it := range items {
				check(name+" volume "+dig(v, "name").(string), s, dig(it, "key").(string))
			}
		}
	}
	if len(addrRefs) != 4 {
		t.Errorf("CLIENT_ADDR_SECRET is set in %v, want all four deployments", addrRefs)
	}
	for name, ref := range addrRefs {
		if ref != addrRefs["sergas-gateway"] {
			t.Errorf("%s takes CLIENT_ADDR_SECRET from %s, the gateway from %s", name, ref, addrRefs["sergas-gateway"])
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
