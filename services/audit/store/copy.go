package store

import "github.com/sergas/core/internal/storecopy"

// CopySpec declares the audit service's tables for sergasctl copy and its portable backups: the chain
// (events with their hashes, the head and its retention anchor) and the signed checkpoints move as
// stored, so that the copy verifies as the original does. chain_head's single row replaces the one the
// migrations seed.
var CopySpec = storecopy.Spec{
	Service: "audit",
	Tables: []storecopy.Table{
		{Name: "events", Key: []string{"sequence"}},
		{Name: "chain_head", Key: []string{"id"}, Seeded: true},
		{Name: "checkpoints", Key: []string{"id"}, Identity: "id"},
	},
}
