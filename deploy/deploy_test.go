// Package deploy holds no code: its test checks the deployment files, since no container engine runs on
// the machines that build Sergas Core.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
}

func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// builtBinaries are the binaries the Dockerfile puts in the image.
func builtBinaries(t *testing.T) []string {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`-o /out/(\S+) \./(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		if _, err := os.Stat(filepath.Join("..", m[2], "main.go")); err != nil {
			t.Errorf("Dockerfile builds %s from %s, which has no main.go", m[1], m[2])
		}
		out = append(out, "/usr/local/bin/"+m[1])
	}
	return out
}

// documented are the variable names in the README's configuration table.
func documented(t *testing.T) []string {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_<>]+)`").FindAllStringSubmatch(string(raw), -1) {
		for _, svc := range []string{"TOKEN", "AUDIT", "WEBHOOK"} {
			out = append(out, strings.ReplaceAll(strings.ReplaceAll(m[1], "<SERVICE>", svc), "<NAME>", "ZOHO"))
		}
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	bins, vars := builtBinaries(t), documented(t)
	kust := docs(t, "k8s/kustomization.yaml")[0]
	deployments := 0
	for _, r := range kust["resources"].([]any) {
		for _, d := range docs(t, filepath.Join("k8s", r.(string))) {
			if d["apiVersion"] == nil || d["kind"] == nil || dig(d, "metadata", "name") == nil {
				t.Errorf("%s: a document lacks apiVersion, kind or metadata.name", r)
			}
			if d["kind"] != "Deployment" {
				continue
			}
			deployments++
			name := dig(d, "metadata", "name").(string)
			if dig(d, "spec", "selector", "matchLabels", "app.kubernetes.io/name") != dig(d, "spec", "template", "metadata", "labels", "app.kubernetes.io/name") {
				t.Errorf("%s: selector does not match the pod labels", name)
			}
			c := dig(d, "spec", "template", "spec", "containers", 0)
			if cmd, _ := dig(c, "command", 0).(string); !slices.Contains(bins, cmd) {
				t.Errorf("%s: command %q is not built into the image", name, cmd)
			}
			if dig(c, "readinessProbe") == nil || dig(c, "livenessProbe") == nil {
				t.Errorf("%s: probes missing", name)
			}
			if g, _ := dig(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int); g <= 20 {
				t.Errorf("%s: terminationGracePeriodSeconds %d does not exceed SHUTDOWN_TIMEOUT (20s)", name, g)
			}
			env, _ := dig(c, "env").([]any)
			for _, e := range env {
				n := dig(e, "name").(string)
				if !slices.Contains(vars, n) {
					t.Errorf("%s: variable %s is not in the README's configuration table", name, n)
				}
				if strings.HasSuffix(n, "_GRPC_ADDR") {
					port := strings.TrimPrefix(dig(e, "value").(string), ":")
					if probe := dig(c, "readinessProbe", "grpc", "port"); probe == nil || probe.(int) != atoi(port) {
						t.Errorf("%s: readiness probe port %v, service listens on %s", name, probe, port)
					}
				}
			}
		}
	}
	if deployments != 4 {
		t.Errorf("%d deployments, want token, audit, webhook and gateway", deployments)
	}
	cm := docs(t, "k8s/config.yaml")[0]
	for k := range cm["data"].(map[string]any) {
		if !slices.Contains(vars, k) {
			t.Errorf("ConfigMap sets %s, which is not in the README's configuration table", k)
		}
	}
}

func TestComposeFile(t *testing.T) {
	bins, vars := builtBinaries(t), documented(t)
	c := docs(t, "compose.yaml")[0]
	services := c["services"].(map[string]any)
	for _, want := range []string{"postgres", "token", "audit", "webhook", "gateway"} {
		s, ok := services[want]
		if !ok {
			t.Fatalf("compose lacks %s", want)
		}
		if want == "postgres" {
			continue
		}
		if ep, _ := dig(s, "entrypoint", 0).(string); !slices.Contains(bins, ep) {
			t.Errorf("%s: entrypoint %q is not built into the image", want, ep)
		}
		env, _ := dig(s, "environment").(map[string]any)
		for k := range env {
			if k != "<<" && !slices.Contains(vars, k) {
				t.Errorf("%s: variable %s is not in the README's configuration table", want, k)
			}
		}
	}
}

// TestEveryVariableIsDocumented reads the Go sources for the variables they read and checks each one is in
// the README's configuration table.
func TestEveryVariableIsDocumented(t *testing.T) {
	vars := documented(t)
	literal := regexp.MustCompile(`env\.(?:String|Int|Bool|Duration|OneOf|List|Lookup)\("([A-Z0-9_]+)"`)
	perService := regexp.MustCompile(`(?:prefix\+|strings\.ToUpper\(service\)\+)"_?([A-Z0-9_]+)"`)
	found := 0
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			strings.Contains(path, "/gen/") || strings.Contains(path, "/.bin/") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllStringSubmatch(string(raw), -1) {
			found++
			if !slices.Contains(vars, m[1]) {
				t.Errorf("%s reads %s, which is not in the README's configuration table", path, m[1])
			}
		}
		for _, m := range perService.FindAllStringSubmatch(string(raw), -1) {
			found++
			if !slices.Contains(vars, "TOKEN_"+m[1]) {
				t.Errorf("%s reads <SERVICE>_%s, which is not in the README's configuration table", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 20 {
		t.Fatalf("found only %d variable reads: the pattern no longer matches the code", found)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
