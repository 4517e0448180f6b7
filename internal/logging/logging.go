// Package logging builds the process's structured logger (log/slog) from the environment.
package logging

import (
	"io"
	"log/slog"
	"strings"

	"github.com/sergas/core/internal/config"
)

// Config selects level and format.
type Config struct {
	Level  slog.Level
	Format string // "json" or "text"
}

// LoadConfig reads LOG_LEVEL (debug, info, warn, error) and LOG_FORMAT (json, text).
func LoadConfig(env *config.Env) Config {
	c := Config{Format: env.OneOf("LOG_FORMAT", "json", "json", "text")}
	switch lv := strings.ToLower(env.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error")); lv {
	case "debug":
		c.Level = slog.LevelDebug
	case "warn":
		c.Level = slog.LevelWarn
	case "error":
		c.Level = slog.LevelError
	default:
		c.Level = slog.LevelInfo
	}
	return c
}

// New returns a logger writing to w; a line logged with a request's context names its trace (trace_id,
// span_id).
func New(c Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "text" {
		return slog.New(WithTrace(slog.NewTextHandler(w, opts)))
	}
	return slog.New(WithTrace(slog.NewJSONHandler(w, opts)))
}
