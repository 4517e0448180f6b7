// Package migrations embeds every service's SQL migrations, laid out as <service>/<dialect>/NNNN_name.up.sql.
// Both dialects of a service carry the same version numbers.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed token audit webhook
var FS embed.FS
