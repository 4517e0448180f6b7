package sergasctl

import (
	"encoding/json"
	"fmt"
	"io"
)

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// errorDoc is what a command prints with --json when it cannot do its work at all.
type errorDoc struct {
	Error string `json:"error"`
	Exit  int    `json:"exit_code"`
}

// fail reports err (on stdout as JSON with --json, on stderr otherwise) and returns its exit code.
func (c *cmdCtx) fail(name string, err error) int {
	code := exitFor(err)
	if c.opts.json {
		_ = writeJSON(c.Stdout, errorDoc{Error: err.Error(), Exit: code})
	} else {
		fmt.Fprintf(c.Stderr, "sergasctl %s: %v\n", name, err)
	}
	return code
}

// configFail reports an invalid configuration (ExitUsage).
func (c *cmdCtx) configFail(name string, err error) int {
	if c.opts.json {
		_ = writeJSON(c.Stdout, errorDoc{Error: err.Error(), Exit: ExitUsage})
	} else {
		fmt.Fprintf(c.Stderr, "sergasctl %s: %v\n", name, err)
	}
	return ExitUsage
}
