package store

import (
	"context"

	"github.com/sergas/core/internal/db"
)

// ChainState is the chain as it stands: its head, and the retention anchor below which events were
// removed. The first retained event (AnchorSeq+1) links to AnchorHash.
type ChainState struct {
	// HeadSeq and HeadHash are the last appended event (0 and chain.Genesis when the log is empty).
	HeadSeq  int64
	HeadHash []byte
	// AnchorSeq and AnchorHash are the last event removed by retention (0 and chain.Genesis when
	// retention never removed any).
	AnchorSeq  int64
	AnchorHash []byte
}

// ChainState returns the head and the anchor, read together without locking (one row, so they are
// always consistent with each other; appends and retention may move them right after).
func (s *Log) ChainState(ctx context.Context) (ChainState, error) { return s.d.ChainState(ctx) }

// ChainStateQuery reads the chain state: one row, so head and anchor come from the same moment. The same
// SQL on both backends.
const ChainStateQuery = `SELECT sequence, hash, anchor_sequence, anchor_hash FROM chain_head WHERE id = 1`

// ScanChainState scans a row of ChainStateQuery.
func ScanChainState(row db.Scanner) (ChainState, error) {
	var st ChainState
	err := row.Scan(&st.HeadSeq, &st.HeadHash, &st.AnchorSeq, &st.AnchorHash)
	return st, err
}
