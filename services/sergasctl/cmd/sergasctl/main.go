// Command sergasctl operates the Sergas Core databases: setup, validate, migrate, health, maintain,
// backup and restore, for the token, audit and webhook services. "sergasctl --help" lists the commands
// and the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sergas/core/internal/config"
	"github.com/sergas/core/services/sergasctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := sergasctl.Run(ctx, os.Args[1:], config.FromOS(), sergasctl.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
