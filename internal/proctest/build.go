package proctest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// built holds each command built by this test binary, by import path, in one temporary directory that
// Main removes.
var built struct {
	sync.Mutex
	dir  string
	bins map[string]*buildResult
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Main runs the tests and then removes the commands they built. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	built.Lock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	built.Unlock()
	os.Exit(code)
}

// binary builds the command pkg once per test binary (concurrent callers wait for the one build), with
// the race detector when the tests have it, and returns the executable's path.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	built.Lock()
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "sergas-proctest-")
		if err != nil {
			built.Unlock()
			t.Fatal(err)
		}
		built.dir, built.bins = dir, map[string]*buildResult{}
	}
	r := built.bins[pkg]
	if r == nil {
		r = &buildResult{path: filepath.Join(built.dir, path.Base(pkg))}
		built.bins[pkg] = r
	}
	built.Unlock()
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", r.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		if out, err := exec.CommandContext(ctx, "go", append(args, pkg)...).CombinedOutput(); err != nil {
			r.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

// Binary builds the command pkg (once per test binary, as Start does) and returns its path, for tests
// that run a command other than a service.
func Binary(t testing.TB, pkg string) string { return binary(t, pkg) }
