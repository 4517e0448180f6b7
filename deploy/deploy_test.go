// Package deploy holds no code: its test checks the deployment files, since no container engine runs on
// the machines that build Sergas Core.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
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

// Every *_GRPC_ENDPOINT a compose service is given names a compose service that listens on that port
// (its *_GRPC_ADDR), and every container runs as hardened as the Kubernetes pods.
func TestComposeEndpointsAndHardening(t *testing.T) {
	services := docs(t, "compose.yaml")[0]["services"].(map[string]any)
	listens := map[string]string{} // "host:port" -> the variable serving it
	for name, s := range services {
		env, _ := dig(s, "environment").(map[string]any)
		for k, v := range env {
			if strings.HasSuffix(k, "_GRPC_ADDR") {
				_, port, _ := strings.Cut(v.(string), ":")
				listens[name+":"+port] = k
			}
		}
	}
	for _, name := range []string{"token", "audit", "webhook", "gateway"} {
		s := services[name]
		env, _ := dig(s, "environment").(map[string]any)
		for k, v := range env {
			if !strings.HasSuffix(k, "_GRPC_ENDPOINT") {
				continue
			}
			addr := v.(string)
			if got, want := listens[addr], strings.TrimSuffix(k, "_ENDPOINT")+"_ADDR"; got != want {
				t.Errorf("%s: %s=%s, but no compose service serves %s there", name, k, addr, want)
			}
		}
		if dig(s, "read_only") != true || !slices.Contains(anyStrings(dig(s, "cap_drop")), "ALL") ||
			!slices.Contains(anyStrings(dig(s, "security_opt")), "no-new-privileges:true") || !slices.Contains(anyStrings(dig(s, "tmpfs")), "/tmp") {
			t.Errorf("%s: want read_only, tmpfs /tmp, cap_drop ALL and no-new-privileges", name)
		}
	}
	// The webhook service reaches the token service for Zoho channels, and every service the audit service.
	for _, name := range []string{"token", "audit", "webhook"} {
		env, _ := dig(services[name], "environment").(map[string]any)
		for _, k := range []string{"AUDIT_GRPC_ENDPOINT", "TOKEN_GRPC_ENDPOINT"} {
			if env[k] == nil {
				t.Errorf("%s: %s unset: it would dial localhost, which is its own container", name, k)
			}
		}
	}
}

func anyStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// dockerStage is one FROM … of the Dockerfile with its instructions (continuation lines joined).
type dockerStage struct {
	from, name string
	lines      []string // "INSTRUCTION arguments"
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			st := dockerStage{from: f[1]}
			if len(f) == 4 && strings.EqualFold(f[2], "AS") {
				st.name = f[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, strings.ToUpper(f[0])+" "+strings.Join(f[1:], " "))
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stage(s), want a build stage and a runtime stage", len(stages))
	}
	return stages
}

// The runtime stage is distroless static as a numeric non-root user: nothing runs in it (no RUN, no shell
// to run with), the binaries come from the build stage, and the entrypoint is an exec-form path.
func TestDockerfileRuntimeStage(t *testing.T) {
	stages := dockerStages(t)
	final := stages[len(stages)-1]
	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(final.from) {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static-debian12:nonroot (no shell, no libc)", final.from)
	}
	var user string
	for _, l := range final.lines {
		instr, args, _ := strings.Cut(l, " ")
		switch instr {
		case "RUN", "SHELL", "ADD", "ONBUILD":
			t.Errorf("runtime stage has %s: it must hold only files copied from the build stage", instr)
		case "COPY":
			if !strings.Contains(args, "--from=") {
				t.Errorf("runtime stage copies from the build context (%s): only build outputs belong there", l)
			}
		case "USER":
			user = args
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(args), &argv); err != nil || len(argv) == 0 || !strings.HasPrefix(argv[0], "/usr/local/bin/") {
				t.Errorf("%s must be exec form naming a built binary (there is no shell): %s", instr, args)
			}
		}
	}
	m := regexp.MustCompile(`^(\d+)(?::(\d+))?$`).FindStringSubmatch(user)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("runtime USER %q: want a numeric non-root uid:gid (Kubernetes checks runAsNonRoot only against numbers)", user)
	}
}

// The build stage builds static binaries (cgo off) with a Go at least as new as go.mod asks for, downloads
// modules with every workspace module's go.mod in place, and copies every directory the binaries are built
// from, which `go list -deps` with cgo off (as the image builds) names.
func TestDockerfileBuildStage(t *testing.T) {
	stages := dockerStages(t)
	build := stages[0]
	all := strings.Join(build.lines, "\n")
	if !strings.Contains(all, "CGO_ENABLED=0") {
		t.Error("build stage does not set CGO_ENABLED=0: the binaries would not be static")
	}
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(string(gomod))
	have := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(build.from)
	if want == nil || have == nil || atoi(have[1])*1000+atoi(have[2]) < atoi(want[1])*1000+atoi(want[2]) {
		t.Errorf("build stage FROM %s, go.mod wants go %v", build.from, want)
	}
	// Copied paths, in order, and where `go mod download` runs among them.
	var copied []string
	download := -1
	for _, l := range build.lines {
		instr, args, _ := strings.Cut(l, " ")
		if instr == "RUN" && strings.Contains(args, "go mod download") && download < 0 {
			download = len(copied)
		}
		if instr != "COPY" {
			continue
		}
		f := strings.Fields(args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") {
				continue
			}
			if strings.HasSuffix(src, "/") {
				copied = append(copied, strings.TrimSuffix(src, "/"))
				continue
			}
			dst := f[len(f)-1]
			if strings.HasSuffix(dst, "/") && dst != "./" {
				src = strings.TrimSuffix(dst, "/") + "/" + filepath.Base(src)
			}
			copied = append(copied, src)
		}
	}
	covered := func(rel string, upto int) bool {
		for _, c := range copied[:upto] {
			if c == "." || rel == c || strings.HasPrefix(rel, c+"/") {
				return true
			}
		}
		return false
	}
	work, err := os.ReadFile("../go.work")
	if err != nil {
		t.Fatal(err)
	}
	if download < 0 {
		t.Fatal("build stage never runs go mod download")
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*(?:use\s+)?(\./\S*|\.)\s*$`).FindAllStringSubmatch(string(work), -1) {
		gm := filepath.ToSlash(filepath.Clean(filepath.Join(m[1], "go.mod")))
		if !covered(gm, download) {
			t.Errorf("go.work uses %s, whose go.mod is not copied before go mod download", m[1])
		}
	}
	mains := regexp.MustCompile(`-o /out/\S+ (\./\S+)`).FindAllStringSubmatch(all, -1)
	if len(mains) == 0 {
		t.Fatal("build stage builds nothing")
	}
	args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}"}
	for _, m := range mains {
		args = append(args, m[1])
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list with cgo off (as the image builds): %v\n%s", err, out)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module from the module cache, which go mod download fetched
		}
		if !covered(filepath.ToSlash(rel), len(copied)) {
			t.Errorf("the binaries are built from %s, which the Dockerfile does not copy", rel)
		}
	}
	// Every command in the repository is in the image.
	cmds, _ := filepath.Glob("../services/*/cmd/*/main.go")
	built := builtBinaries(t)
	for _, c := range cmds {
		if name := filepath.Base(filepath.Dir(c)); !slices.Contains(built, "/usr/local/bin/"+name) {
			t.Errorf("the image lacks %s", name)
		}
	}
}
