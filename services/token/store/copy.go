package store

import "github.com/sergas/core/internal/storecopy"

// CopySpec declares the token service's tables for sergasctl copy and its portable backups: every
// column is moved as stored (sealed tokens as sealed bytes, under the same keyring), and the identity
// sequences continue after the largest id ever handed out.
var CopySpec = storecopy.Spec{
	Service: "token",
	Tables: []storecopy.Table{
		{Name: "connections", Key: []string{"provider", "connection_id"}},
		{Name: "refresh_events", Key: []string{"id"}, Identity: "id"},
		{Name: "audit_outbox", Key: []string{"id"}, Identity: "id"},
	},
}
