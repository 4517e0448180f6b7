// Package storecopy moves a service's tables between databases, every column kept, and proves it did:
// rows are read in key order as canonical values (the same whatever the backend), written in batches
// (COPY on PostgreSQL), and hashed on both sides, so that a copy whose row counts and per-table
// checksums match holds the same data.
//
// The algorithm (Copy, Checksum) is written once, above three small drivers: SQLite, PostgreSQL and a
// portable file (gzip-compressed JSON lines, what sergasctl's PostgreSQL backups hold). Each service's
// store package declares its tables (a Spec); the columns and their kinds are read from the databases,
// so that a column added by a migration is copied without a change here.
package storecopy

import "fmt"

// Kind is how a column's values are represented. Canonical values are nil, int64, string or []byte.
type Kind string

// The kinds of column the services use, with their PostgreSQL and SQLite types.
const (
	KindInt   Kind = "int"   // smallint/integer/bigint; INTEGER
	KindText  Kind = "text"  // text; TEXT
	KindBytes Kind = "bytes" // bytea; BLOB
	KindTime  Kind = "time"  // timestamptz; INTEGER Unix microseconds. Canonical: int64 microseconds.
	KindBool  Kind = "bool"  // boolean; INTEGER 0/1. Canonical: int64 0 or 1.
	KindJSON  Kind = "json"  // jsonb; TEXT. Canonical: compact JSON with object keys sorted.
	KindUUID  Kind = "uuid"  // uuid; TEXT. Canonical: lower-case hyphenated text.
)

// Column is one column of a table.
type Column struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
}

// Table is one table of a service as its store declares it.
type Table struct {
	Name string
	// Key is the primary key, the order rows are read, written and hashed in.
	Key []string
	// Identity is the column whose values a sequence assigns (PostgreSQL identity, SQLite
	// AUTOINCREMENT), or "". Its high-water mark is copied, so that an id is never handed out twice.
	Identity string
	// Local are columns a database computes for itself and that are never moved: the target fills them
	// with LocalValue (webhook events.txid, PostgreSQL's commit horizon: 0 means committed long ago).
	Local      []string
	LocalValue int64
	// Seeded tables hold rows the migrations insert (audit's chain_head): the source's replace them.
	Seeded bool
}

// Spec is a service's tables, in the order they are copied.
type Spec struct {
	Service string
	Tables  []Table
}

// Table returns the table called name.
func (s Spec) Table(name string) (Table, bool) {
	for _, t := range s.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return Table{}, false
}

func (t Table) isLocal(col string) bool {
	for _, l := range t.Local {
		if l == col {
			return true
		}
	}
	return false
}

// pgKind maps a PostgreSQL type (information_schema data_type) to a kind.
func pgKind(dataType string) (Kind, error) {
	switch dataType {
	case "smallint", "integer", "bigint":
		return KindInt, nil
	case "text", "character varying":
		return KindText, nil
	case "bytea":
		return KindBytes, nil
	case "timestamp with time zone":
		return KindTime, nil
	case "boolean":
		return KindBool, nil
	case "jsonb", "json":
		return KindJSON, nil
	case "uuid":
		return KindUUID, nil
	}
	return "", fmt.Errorf("column type %q has no canonical form", dataType)
}
