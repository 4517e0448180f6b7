package db_test

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sergas/core/internal/db"
	"github.com/sergas/core/internal/errs"
)

func TestPostgresErrorKinds(t *testing.T) {
	cases := []struct {
		err  error
		kind errs.Kind
	}{
		{fmt.Errorf("query: %w", io.ErrUnexpectedEOF), errs.KindUnavailable},
		{pgconn.ErrConnClosed, errs.KindUnavailable},
		{driver.ErrBadConn, errs.KindUnavailable},
		{fmt.Errorf("write: %w", syscall.EPIPE), errs.KindUnavailable},
		{&pgconn.PgError{Code: "57P01"}, errs.KindUnavailable}, // admin_shutdown
		{&pgconn.PgError{Code: "57P03"}, errs.KindUnavailable}, // cannot_connect_now
		{&pgconn.PgError{Code: "53300"}, errs.KindUnavailable}, // too_many_connections
		{&pgconn.PgError{Code: "08006"}, errs.KindUnavailable}, // connection_failure
		{&pgconn.PgError{Code: "23505"}, errs.KindAlreadyExists},
		{&pgconn.PgError{Code: "42601"}, errs.KindInternal}, // a bug in our SQL stays Internal
		{errors.New("something else"), errs.KindInternal},
	}
	for _, c := range cases {
		if got := errs.KindOf(db.PostgresError(c.err)); got != c.kind {
			t.Errorf("%v: kind %v, want %v", c.err, got, c.kind)
		}
	}
}
