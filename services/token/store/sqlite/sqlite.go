// Package sqlite opens the token store on an embedded SQLite file (or, for TOKEN_PERSISTENCE_ENABLED=false,
// on an in-memory SQLite database, so that behaviour is the same either way).
package sqlite

import (
	"time"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/sqlq"
	"github.com/sergas/core/services/token/store/sqlstore"
)

// New returns the token store over an opened, migrated SQLite database.
func New(d *db.SQLiteDB) *sqlstore.Store {
	return sqlstore.New(d.Write, d.Read, sqlstore.Dialect{
		Time:      func(t time.Time) any { return t.UnixMicro() },
		Translate: db.SQLiteError,
		// In SQLite "$3" is a named parameter numbered by first appearance; "?3" is the third argument.
		Rebind: sqlq.Rebind,
	}, d.Close)
}
