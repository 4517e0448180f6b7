package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// rollbackTimeout bounds the ROLLBACK after a failed pipelined transaction: a connection that hangs
// there is closed by the pool on release rather than held.
const rollbackTimeout = 5 * time.Second

// PipelineTx runs fn in a transaction on one connection without the two round trips a transaction
// usually costs of its own: begin (the statement that opens it, with any SET LOCAL after it) is queued
// in pending, which fn sends with its first statements, and COMMIT goes with whatever fn left pending.
// fn must send pending, in order, before or with every statement it runs on conn (a statement sent
// ahead of it would run outside the transaction). On an error the transaction is rolled back; a
// connection that cannot say it was is closed rather than returned to the pool. A claim or settle of
// deliveries took four round trips (begin, read, writes, commit) and now takes two.
func (p *PostgresDB) PipelineTx(ctx context.Context, begin []string, fn func(conn *pgx.Conn, pending *pgx.Batch) error) error {
	c, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release() // the pool closes a connection released inside a transaction
	conn := c.Conn()
	pending := &pgx.Batch{}
	for _, q := range begin {
		pending.Queue(q)
	}
	err = fn(conn, pending)
	if err == nil {
		pending.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			if tag.String() != "COMMIT" { // a transaction an earlier error aborted answers COMMIT with ROLLBACK
				return pgx.ErrTxCommitRollback
			}
			return nil
		})
		err = conn.SendBatch(ctx, pending).Close()
	}
	if err != nil {
		if conn.PgConn().TxStatus() != 'I' {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			_, _ = conn.Exec(rctx, "ROLLBACK")
			cancel()
		}
		return PostgresError(err)
	}
	return nil
}
