package store

import "context"

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
