// Package sergasctl is the operator's command over the three services' databases: setup, validate,
// migrate, health, maintain, backup and restore. It reads the same variables as the services (DATA_DIR,
// DATABASE_URL, <SERVICE>_DATABASE_URL, <SERVICE>_DATABASE_SCHEMA, SERGAS_ENV, the keyrings), through the
// services' own LoadConfig functions, so it always finds the databases they use.
package sergasctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/sergas/core/internal/config"
)

// Exit codes, documented in the usage text: scripts may rely on them.
const (
	ExitOK          = 0 // the command did what it was asked and every check passed
	ExitFailed      = 1 // a check failed (validate, health) or the work failed part-way
	ExitUsage       = 2 // the command line or the configuration is wrong: nothing was attempted
	ExitUnreachable = 3 // a database or file could not be reached or opened
)

// IO is where a command reads and writes.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// command is one subcommand.
type command struct {
	name, summary, usage string
	run                  func(ctx context.Context, c *cmdCtx) int
	flags                func(fs *flag.FlagSet, o *options)
}

// options are the flags every command may read.
type options struct {
	service string
	json    bool
	full    bool
	yes     bool
	// backup and restore
	out                   string
	keepDaily, keepWeekly int
	// cmd holds a command's own flags: its flags function stores a pointer to a struct it defines in
	// its own file, and its run function reads it back, so that a new command adds no field here.
	cmd any
}

// cmdCtx is what a running command gets.
type cmdCtx struct {
	IO
	env  *config.Env
	opts options
	args []string
	log  *slog.Logger
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

func find(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

const exitCodesText = `Exit codes:
  0  ok: done, every check passed
  1  a check failed (validate, health) or the work failed part-way
  2  usage: unknown command or flag, bad arguments, invalid configuration (nothing was attempted)
  3  cannot reach or open something: a database, its file or a key file
`

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `sergasctl operates the Sergas Core databases: token, audit and webhook.

Usage: sergasctl <command> [flags]

Commands:
`)
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Every command reads the services' variables (DATA_DIR, DATABASE_URL, <SERVICE>_DATABASE_URL,
<SERVICE>_DATABASE_SCHEMA, SERGAS_ENV, TOKEN_ENCRYPTION_KEYS, WEBHOOK_ENCRYPTION_KEYS, AUDIT_SIGNING_KEY …)
and so finds the databases the services use. "sergasctl <command> --help" describes a command.

`+exitCodesText)
}

// Run runs sergasctl with args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, env *config.Env, io IO) int {
	if len(args) == 0 {
		mainUsage(io.Stderr)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && find(args[1]) != nil {
			return Run(ctx, []string{args[1], "--help"}, env, io)
		}
		mainUsage(io.Stdout)
		return ExitOK
	}
	cmd := find(args[0])
	if cmd == nil {
		fmt.Fprintf(io.Stderr, "sergasctl: unknown command %q\n\n", args[0])
		mainUsage(io.Stderr)
		return ExitUsage
	}
	c := &cmdCtx{IO: io, env: env}
	fs := flag.NewFlagSet("sergasctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	fs.StringVar(&c.opts.service, "service", "all", "the service to work on: token, audit, webhook or all")
	fs.BoolVar(&c.opts.json, "json", false, "print the result as one JSON document on stdout")
	if cmd.flags != nil {
		cmd.flags(fs, &c.opts)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sergasctl %s\n\n%s\nFlags:\n", cmd.usage, cmd.summary)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), "\n"+exitCodesText)
	}
	positional, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(io.Stdout)
		fs.Usage()
		return ExitOK
	}
	if err != nil {
		return ExitUsage // the flag package has printed the problem and the usage
	}
	if _, ok := serviceSet[c.opts.service]; !ok {
		fmt.Fprintf(io.Stderr, "sergasctl %s: --service must be token, audit, webhook or all, not %q\n", cmd.name, c.opts.service)
		return ExitUsage
	}
	c.args = positional
	// Logs from the services' code (key files created, warnings) go to stderr, never into --json output.
	c.log = slog.New(slog.NewTextHandler(io.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return cmd.run(ctx, c)
}

// parseInterspersed parses flags placed before, between or after positional arguments
// ("migrate down 2 --yes").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for range len(args) + 1 { // bounded: every round consumes at least one argument or ends
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	return positional, nil
}

// usageError prints a usage problem of command name and returns ExitUsage.
func (c *cmdCtx) usageError(name, format string, a ...any) int {
	fmt.Fprintf(c.Stderr, "sergasctl %s: %s\n", name, fmt.Sprintf(format, a...))
	fmt.Fprintf(c.Stderr, "run \"sergasctl %s --help\" for its usage\n", name)
	return ExitUsage
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
