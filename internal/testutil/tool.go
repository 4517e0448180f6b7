package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Tool returns the path of an external program a test runs (promtool, kustomize, Debian's python3 with
// grpc). Without it the test skips, unless REQUIRE_TOOLS=1 (set by `make test`, whose scripts/packages
// installs them), where a missing tool fails the test: CI must never pass by skipping.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed but REQUIRE_TOOLS=1: run scripts/packages (make test does)", name)
	}
	t.Skipf("%s is not installed (scripts/packages installs it)", name)
	return ""
}
