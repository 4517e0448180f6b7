package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/sergas/core/internal/errs"
	"github.com/sergas/core/services/audit/chain"
)

// Verification, written once above the drivers: it reads the log through EventList, ChainState and
// CheckpointList only, so every backend verifies alike.
//
// The walk reads the range in sequence order, a page at a time (bounded memory whatever the log's
// size), keeping the running hash: the stored hash of the event before the range, the retention anchor's
// hash when the range starts at the first retained event, chain.Genesis at the very start. It stops at the
// first break and names it:
//
//	what the walk sees at sequence s                                  problem       named sequence
//	no event s (the next stored one is later, or none before the end) MISSING       s
//	s's fields and previous_hash do not give its hash, but they do    INSERTED      o
//	  at an earlier sequence o whose predecessor's hash is s's
//	  previous_hash (rows were pushed up to make room for forged ones)
//	... they do at a later sequence o, and s's predecessor there is   OUT_OF_ORDER  s
//	  still stored nearby (rows were moved, e.g. two swapped)
//	... they do at a later sequence o, and s's predecessor is gone    MISSING       s
//	  (rows were removed and the rest renumbered down)
//	... they do at an earlier o, but not as above                     OUT_OF_ORDER  s
//	... they do at no sequence nearby                                 CHANGED       s
//	s hashes correctly, but its previous_hash is not s-1's hash and   INSERTED      s-1
//	  is s-2's (the event at s-1 was forged in between)
//	... and is not s-2's either (s-1 was rewritten and re-hashed)     CHANGED       s-1
//	  (or, when s-1 is the anchor or genesis, s itself: CHANGED s)
//	a signed checkpoint at sequence c whose hash is not the stored    CHECKPOINT_   c
//	  hash of c, whose signature does not verify, or whose key or     MISMATCH
//	  signed text the service does not accept
//
//	(range starting at the first retained event after a retention cut:)
//	the newest checkpoint signs an older anchor, or none exists       MISSING       signed anchor+1
//	  (events removed without retention's signature, or a run that
//	  stopped between its cut and its checkpoint, until its next run)
//	the newest checkpoint signs the anchor with another hash, or a    CHECKPOINT_   that anchor
//	  later anchor than the stored one                                MISMATCH
//
// "Nearby" is verifyReach sequences either side (moves further than that read as CHANGED). When the range
// reaches the head, the end of the chain is checked too: the head's hash must be the last event's
// (CHANGED at the head), no event may lie beyond the head (INSERTED at the first one beyond) and no
// signed checkpoint may sign a sequence beyond the head (MISSING at head+1: the log was cut short and the
// head moved back). The anchor is checked first, then the walk; a checkpoint problem at a lower sequence
// than the walk's first break wins, and the walk's problems come before the end's.
//
// What verification cannot see: an attacker who rewrites and re-hashes the chain after the last
// checkpoint (head moved) leaves a chain that verifies, and so does one who also deletes the checkpoints
// after the rewritten point, or re-signs them with a key of their own (each checkpoint is checked against
// the key stored with it, since keys rotated away are only known from there). Checkpoints stored in the
// same database are as exposed as the events; copies kept elsewhere (exports, published checkpoints)
// are what proves the log against such an attacker.

// Problem says how the stored log differs from what was appended; the values are those of
// auditv1.ChainProblem.
type Problem int32

// The problems VerifyChain names.
const (
	ProblemNone               Problem = 0
	ProblemChanged            Problem = 1
	ProblemMissing            Problem = 2
	ProblemInserted           Problem = 3
	ProblemOutOfOrder         Problem = 4
	ProblemCheckpointMismatch Problem = 5
)

// DefaultVerifyPage is how many events verification reads per query.
const DefaultVerifyPage = 1000

// verifyReach is how far either side of a broken event verification looks for the sequence it was
// hashed at and for its predecessor. It bounds the extra work at the first break (2·verifyReach hashes and
// one read of about as many rows), which happens once per verification.
const verifyReach = 128

// ChainReader is what verification reads; every Store has it.
type ChainReader interface {
	EventList(ctx context.Context, p EventListParams) ([]*Event, error)
	ChainState(ctx context.Context) (ChainState, error)
	CheckpointList(ctx context.Context, p CheckpointListParams) ([]*Checkpoint, error)
}

// VerifyParams names the range to verify and how to judge checkpoints.
type VerifyParams struct {
	// Start and End bound the range, both included: 0 means the first retained event and the chain head.
	// Neither may be negative, and End (when given) not below Start. A range starting below the first
	// retained event starts at it, and one ending beyond the head ends at it; Verification.Detail says so.
	Start, End int64
	// CheckCheckpoint checks a checkpoint on its own (its signature, its key, that its signed text holds
	// its fields) and says what is wrong in words that quote no stored value. When nil, the Ed25519
	// signature of the signed text by the public key stored beside it is checked, which says nothing about
	// the fields outside the text, nor about a key that whoever can write the database chose.
	CheckCheckpoint func(c *Checkpoint) error
	// PageSize is how many events are read per query; DefaultVerifyPage when 0.
	PageSize int
}

// Verification is the outcome of Verify.
type Verification struct {
	// Valid is true when every check passed.
	Valid bool
	// Start and End are the range checked (Start > End when there was nothing to check).
	Start, End int64
	// EventsChecked and CheckpointsChecked count what was compared.
	EventsChecked, CheckpointsChecked int64
	// The chain head and retention anchor when verification started.
	HeadSeq    int64
	HeadHash   []byte
	AnchorSeq  int64
	AnchorHash []byte
	// FirstBad and Problem name the first break; zero when Valid.
	FirstBad int64
	Problem  Problem
	// Detail is a sentence for people on what was checked and found. It names sequences and
	// checkpoint ids, never stored values.
	Detail string
}

// VerifyChain verifies the range of p over this log (see Verify).
func (s *Log) VerifyChain(ctx context.Context, p VerifyParams) (*Verification, error) {
	return Verify(ctx, s, p)
}

// Verify recomputes every hash of a range of the log and checks the links between events, the head and
// the signed checkpoints of the range, naming the first sequence where the stored log differs from what
// was appended (see the table above). A broken log is a Verification with Valid false, not an error;
// errors are the caller's (errs.KindInvalid), the database's, or ctx's. It returns errs.KindConflict
// when retention removed events of the range while they were read: verifying again then checks from
// the new anchor.
func Verify(ctx context.Context, r ChainReader, p VerifyParams) (*Verification, error) {
	if p.Start < 0 || p.End < 0 {
		return nil, errs.Invalid("start_sequence and end_sequence must not be negative")
	}
	if p.End != 0 && p.End < p.Start {
		return nil, errs.Invalid("end_sequence must not be below start_sequence")
	}
	st, err := r.ChainState(ctx)
	if err != nil {
		return nil, err
	}
	if st.AnchorSeq == 0 && len(st.AnchorHash) == 0 {
		st.AnchorHash = chain.Genesis
	}
	w := &walker{r: r, p: p, st: st, page: p.PageSize}
	if w.page <= 0 {
		w.page = DefaultVerifyPage
	}
	v := &Verification{HeadSeq: st.HeadSeq, HeadHash: st.HeadHash, AnchorSeq: st.AnchorSeq, AnchorHash: st.AnchorHash}
	var notes []string
	start, end := p.Start, p.End
	switch {
	case start == 0:
		start = st.AnchorSeq + 1
	case start <= st.AnchorSeq:
		notes = append(notes, fmt.Sprintf("events up to %d were removed by retention, so the range starts at %d", st.AnchorSeq, st.AnchorSeq+1))
		start = st.AnchorSeq + 1
	}
	reachesHead := end == 0 || end >= st.HeadSeq
	if end > st.HeadSeq {
		notes = append(notes, fmt.Sprintf("the range ends at the chain head %d (end_sequence is beyond it)", st.HeadSeq))
	}
	if end == 0 || end > st.HeadSeq {
		end = st.HeadSeq
	}
	v.Start, v.End = start, end

	var brk *finding // the first break
	if start == st.AnchorSeq+1 {
		brk, err = w.checkAnchor(ctx)
	}
	if err == nil && brk == nil {
		brk, err = w.walk(ctx, start, end)
	}
	if err == nil && brk == nil && reachesHead {
		brk, err = w.checkEnd(ctx, start)
	}
	if err != nil {
		return nil, err
	}
	v.EventsChecked, v.CheckpointsChecked = w.events, w.checkpoints
	if brk != nil {
		if brk.cutMeanwhile {
			// Retention may have removed events after the walk began: that is no break.
			now, err := r.ChainState(ctx)
			if err != nil {
				return nil, err
			}
			if now.AnchorSeq >= brk.seq {
				return nil, errs.New(errs.KindConflict, "retention removed events of the range while it was verified; verify again")
			}
		}
		v.FirstBad, v.Problem = brk.seq, brk.problem
		notes = append(notes, brk.detail)
	} else {
		v.Valid = true
		if start > end {
			notes = append(notes, "there is no event in the range to check")
		} else {
			notes = append(notes, fmt.Sprintf("events %d to %d and %s verify", start, end, plural(w.checkpoints, "checkpoint")))
		}
	}
	v.Detail = sentence(notes)
	return v, nil
}

// plural says n things.
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// sentence joins notes into one sentence.
func sentence(notes []string) string {
	s := strings.Join(notes, "; ")
	if s == "" {
		return ""
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// finding is the first break found.
type finding struct {
	seq     int64
	problem Problem
	detail  string
	// cutMeanwhile says a retention cut made after the walk began could explain the finding (an event
	// missing at or below the new anchor).
	cutMeanwhile bool
}

func found(seq int64, p Problem, format string, args ...any) *finding {
	return &finding{seq: seq, problem: p, detail: fmt.Sprintf(format, args...)}
}

// walker holds the state of one verification.
type walker struct {
	r    ChainReader
	p    VerifyParams
	st   ChainState
	page int
	// events and checkpoints count what was compared.
	events, checkpoints int64
	// last is the sequence the walk ended on (the event before start when it checked none) and lastHash
	// its stored hash; lastOK says the walk got there.
	last     int64
	lastHash []byte
	lastOK   bool
}

// hashBefore returns the hash the event at start must link to: the anchor's (genesis at the very start)
// or the stored hash of the event before it, which is not itself checked.
func (w *walker) hashBefore(ctx context.Context, start int64) ([]byte, *finding, error) {
	if start-1 == w.st.AnchorSeq {
		return w.st.AnchorHash, nil, nil
	}
	es, err := w.r.EventList(ctx, EventListParams{After: start - 2, Limit: 1})
	if err != nil {
		return nil, nil, err
	}
	if len(es) == 0 || es[0].Sequence != start-1 {
		f := found(start-1, ProblemMissing, "event %d, whose hash the range's first event must link to, is missing", start-1)
		f.cutMeanwhile = true
		return nil, f, nil
	}
	return es[0].Hash, nil, nil
}

// walk checks the events of [start, end] and the checkpoints among them, a page at a time.
func (w *walker) walk(ctx context.Context, start, end int64) (*finding, error) {
	if start > end {
		if start-1 == w.st.HeadSeq {
			// Nothing to check, but the head must still be the last event's hash (checkEnd).
			h, f, err := w.hashBefore(ctx, start)
			if f != nil || err != nil {
				return f, err
			}
			w.last, w.lastHash, w.lastOK = start-1, h, true
		}
		return nil, nil
	}
	running, f, err := w.hashBefore(ctx, start)
	if f != nil || err != nil {
		return f, err
	}
	pages := newPager(ctx, w.r, end, w.page)
	defer pages.close()
	next := start // the sequence expected next
	for next <= end {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		es, err := pages.get(next - 1)
		if err != nil {
			return nil, err
		}
		pageStart := next
		// hashes[i] is the stored hash of event pageStart+i, for the checkpoints of this page.
		hashes := make([][]byte, 0, len(es))
		var evf *finding
		for _, e := range es {
			if next > end {
				break
			}
			if e.Sequence != next {
				evf = found(next, ProblemMissing, "event %d is missing", next)
				evf.cutMeanwhile = true
				break
			}
			self := chain.Hash(e.PreviousHash, e.Fields())
			if !bytes.Equal(self, e.Hash) || !bytes.Equal(e.PreviousHash, running) {
				if evf, err = w.classify(ctx, e, running, bytes.Equal(self, e.Hash), start); err != nil {
					return nil, err
				}
				break
			}
			w.events++
			hashes = append(hashes, e.Hash)
			running = e.Hash
			next++
		}
		if evf == nil && len(es) == 0 {
			evf = found(next, ProblemMissing, "event %d is missing", next)
			evf.cutMeanwhile = true
		}
		// Checkpoints up to the last event that verified (a checkpoint at the broken sequence cannot be
		// compared with anything trustworthy); one at a lower sequence than the break is the first break.
		cpf, err := w.checkCheckpoints(ctx, pageStart, hashes)
		if err != nil {
			return nil, err
		}
		if cpf != nil && (evf == nil || cpf.seq < evf.seq) {
			return cpf, nil
		}
		if evf != nil {
			return evf, nil
		}
	}
	w.last, w.lastHash, w.lastOK = end, running, true
	return nil, nil
}

// pager reads the events of a range a page at a time, one page ahead: while the walk hashes a page, the
// next one is read, so that the database's work (another process, or SQLite's in this one) and the
// hashing overlap. At most two pages are held.
type pager struct {
	r      ChainReader
	end    int64
	size   int
	ctx    context.Context
	cancel context.CancelFunc
	ahead  chan pageRead // the page being read ahead; nil when none
}

type pageRead struct {
	after int64
	es    []*Event
	err   error
}

func newPager(ctx context.Context, r ChainReader, end int64, size int) *pager {
	ctx, cancel := context.WithCancel(ctx)
	return &pager{r: r, end: end, size: size, ctx: ctx, cancel: cancel}
}

func (p *pager) read(after int64) pageRead {
	limit := min(int64(p.size), p.end-after) // never past the range's end when the log has no gaps
	es, err := p.r.EventList(p.ctx, EventListParams{After: after, Limit: int(limit)})
	return pageRead{after: after, es: es, err: err}
}

// get returns the page of events after the sequence after (the one read ahead when it was read from
// there) and starts reading the page that follows it.
func (p *pager) get(after int64) ([]*Event, error) {
	var got pageRead
	ok := false
	if p.ahead != nil {
		got, ok = <-p.ahead, true
		p.ahead = nil
	}
	if !ok || got.after != after {
		got = p.read(after)
	}
	if got.err == nil && len(got.es) > 0 {
		if last := got.es[len(got.es)-1].Sequence; last < p.end {
			ch := make(chan pageRead, 1)
			go func() { ch <- p.read(last) }()
			p.ahead = ch
		}
	}
	return got.es, got.err
}

// close stops a read ahead and waits for it, so that nothing outlives the walk.
func (p *pager) close() {
	p.cancel()
	if p.ahead != nil {
		<-p.ahead
		p.ahead = nil
	}
}

// checkCheckpoints checks the signed checkpoints at sequences from..from+len(hashes)-1 against the
// stored hashes there, and returns the problem at the lowest sequence.
func (w *walker) checkCheckpoints(ctx context.Context, from int64, hashes [][]byte) (*finding, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	to := from + int64(len(hashes)) - 1
	var first *finding
	err := w.eachCheckpoint(ctx, CheckpointListParams{FromSeq: from, ToSeq: to}, func(c *Checkpoint) {
		w.checkpoints++
		f := w.checkpointProblem(c)
		if f == nil && !bytes.Equal(c.Hash, hashes[c.Sequence-from]) {
			f = found(c.Sequence, ProblemCheckpointMismatch,
				"checkpoint %d signed a hash for sequence %d that the stored event %d does not have", c.ID, c.Sequence, c.Sequence)
		}
		if f != nil && (first == nil || f.seq < first.seq) {
			first = f
		}
	})
	return first, err
}

// eachCheckpoint calls fn with every checkpoint p selects (its sequence within the bounds), oldest
// first, a page at a time.
func (w *walker) eachCheckpoint(ctx context.Context, p CheckpointListParams, fn func(*Checkpoint)) error {
	p.Ascending, p.Limit = true, w.page
	for {
		cs, err := w.r.CheckpointList(ctx, p)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.Sequence < p.FromSeq || c.Sequence > p.ToSeq {
				continue // never, from a correct store; an index past the page would panic
			}
			fn(c)
		}
		if len(cs) < p.Limit {
			return nil
		}
		p.AfterID = cs[len(cs)-1].ID
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// checkpointProblem checks what a checkpoint says about itself (VerifyParams.CheckCheckpoint).
func (w *walker) checkpointProblem(c *Checkpoint) *finding {
	check := w.p.CheckCheckpoint
	if check == nil {
		check = checkSignature
	}
	if err := check(c); err != nil {
		return found(c.Sequence, ProblemCheckpointMismatch, "checkpoint %d does not check: %v", c.ID, err)
	}
	return nil
}

// checkSignature checks the Ed25519 signature of c's signed text by the public key stored with it.
func checkSignature(c *Checkpoint) error {
	if len(c.PublicKey) != ed25519.PublicKeySize || !ed25519.Verify(ed25519.PublicKey(c.PublicKey), []byte(c.SignedText), c.Signature) {
		return errors.New("the signature does not verify")
	}
	return nil
}

// checkAnchor checks the retention anchor that a range starting at the first retained event links to.
// Retention signs a checkpoint of every anchor it makes (RETENTION, after its cut), so the newest
// checkpoint names the current anchor: an anchor that no checkpoint signed means events were removed
// without retention's signature (or a retention run stopped between its cut and its checkpoint, which
// its next run signs), and a signed anchor with another hash means the anchor was changed. Checkpoints
// that do not check on their own vouch for nothing and are passed over (the walk reports those in the
// range), so that a forged row cannot stand in for the newest checkpoint.
func (w *walker) checkAnchor(ctx context.Context) (*finding, error) {
	if w.st.AnchorSeq == 0 {
		return nil, nil // nothing was removed; the first event must link to genesis (the walk checks it)
	}
	newest, err := w.newestValidCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	signed := int64(0)
	if c := newest; c != nil {
		signed = c.AnchorSeq
		switch {
		case signed == w.st.AnchorSeq && !bytes.Equal(c.AnchorHash, w.st.AnchorHash):
			return found(signed, ProblemCheckpointMismatch, "checkpoint %d signed another hash for the retention anchor %d", c.ID, signed), nil
		case signed == w.st.AnchorSeq:
			return nil, nil
		case signed > w.st.AnchorSeq:
			// Legitimate only when retention cut and signed after the state was read.
			now, err := w.r.ChainState(ctx)
			if err != nil {
				return nil, err
			}
			if now.AnchorSeq != w.st.AnchorSeq {
				return nil, errs.New(errs.KindConflict, "retention removed events while the chain was verified; verify again")
			}
			return found(signed, ProblemCheckpointMismatch, "checkpoint %d signed the retention anchor %d, beyond the stored anchor %d", c.ID, signed, w.st.AnchorSeq), nil
		}
	}
	return found(signed+1, ProblemMissing,
		"events %d to %d were removed, but no checkpoint signs the retention anchor %d (a retention run that stopped before signing leaves this until its next run)",
		signed+1, w.st.AnchorSeq, w.st.AnchorSeq), nil
}

// newestValidCheckpoint returns the newest checkpoint that checks on its own, nil when none does.
func (w *walker) newestValidCheckpoint(ctx context.Context) (*Checkpoint, error) {
	p := CheckpointListParams{Limit: w.page}
	for {
		cs, err := w.r.CheckpointList(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if w.checkpointProblem(c) == nil {
				return c, nil
			}
		}
		if len(cs) < p.Limit {
			return nil, nil
		}
		// Ids only go down, so the pages end.
		p.BeforeID = cs[len(cs)-1].ID
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// checkEnd checks the end of the chain once a walk that reached the head found nothing: the head's hash
// is the last event's, no event lies beyond the head and no signed checkpoint signs a sequence beyond it.
//
// Appends run meanwhile: an append stores its events and moves the head in one transaction, and a
// checkpoint signs a head that was committed before it. So the last event and the checkpoints beyond
// the head are read first, and the head after them: whatever they show below that later head was
// appended legitimately since the walk began.
func (w *walker) checkEnd(ctx context.Context, start int64) (*finding, error) {
	if w.lastOK && w.last == w.st.HeadSeq && !bytes.Equal(w.lastHash, w.st.HeadHash) {
		return w.headMismatch(ctx)
	}
	last, err := w.r.EventList(ctx, EventListParams{Descending: true, Limit: 1})
	if err != nil {
		return nil, err
	}
	var beyond []*Checkpoint
	// A few suffice: one valid checkpoint beyond the head proves the log was cut short.
	const maxBeyond = 16
	p := CheckpointListParams{FromSeq: w.st.HeadSeq + 1, ToSeq: math.MaxInt64, Ascending: true, Limit: maxBeyond}
	if beyond, err = w.r.CheckpointList(ctx, p); err != nil {
		return nil, err
	}
	now, err := w.r.ChainState(ctx)
	if err != nil {
		return nil, err
	}
	var firstInserted *finding
	if len(last) > 0 && last[0].Sequence > now.HeadSeq {
		// Name the first event beyond the head, not the last.
		es, err := w.r.EventList(ctx, EventListParams{After: now.HeadSeq, Limit: 1})
		if err != nil {
			return nil, err
		}
		seq := last[0].Sequence
		if len(es) > 0 {
			seq = es[0].Sequence
		}
		firstInserted = found(seq, ProblemInserted, "event %d lies beyond the chain head %d", seq, now.HeadSeq)
	}
	var cut *finding
	for _, c := range beyond {
		if c.Sequence <= now.HeadSeq {
			continue // signed after the walk began, of events appended since
		}
		w.checkpoints++
		if f := w.checkpointProblem(c); f != nil {
			if cut == nil || f.seq < cut.seq {
				cut = f
			}
			continue
		}
		f := found(now.HeadSeq+1, ProblemMissing, "checkpoint %d signed sequence %d, beyond the chain head %d: the log was cut short", c.ID, c.Sequence, now.HeadSeq)
		if cut == nil || f.seq < cut.seq {
			cut = f
		}
	}
	switch {
	case firstInserted != nil && (cut == nil || firstInserted.seq <= cut.seq):
		return firstInserted, nil
	default:
		return cut, nil
	}
}

// headMismatch names the break when the head's hash is not the stored hash of the event at the head's
// sequence. When an event beyond the head has the head's hash, the head's event was pushed up by forged
// events inserted below it (INSERTED at the first of them); otherwise the event at the head was changed
// and re-hashed, or the head itself was changed (CHANGED at the head).
func (w *walker) headMismatch(ctx context.Context) (*finding, error) {
	head := w.st.HeadSeq
	es, err := w.r.EventList(ctx, EventListParams{After: head, Limit: verifyReach})
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if bytes.Equal(e.Hash, w.st.HeadHash) {
			if first := 2*head - e.Sequence + 1; first > w.st.AnchorSeq {
				return found(first, ProblemInserted, "the chain head's event sits at %d: events from %d were inserted below it", e.Sequence, first), nil
			}
		}
	}
	if head == w.st.AnchorSeq {
		return found(head, ProblemChanged, "the chain head at %d does not match the start of the chain", head), nil
	}
	return found(head, ProblemChanged, "the chain head does not match the stored event %d", head), nil
}

// classify names the first break, at event e: its own hash is broken (selfOK false) or its
// previous_hash is not running, the stored hash of the event before it. It reads the stored events within
// verifyReach of e to tell the kinds apart (see the table above).
func (w *walker) classify(ctx context.Context, e *Event, running []byte, selfOK bool, start int64) (*finding, error) {
	s := e.Sequence
	lo := max(s-verifyReach-1, 1)
	near, err := w.r.EventList(ctx, EventListParams{After: lo - 1, Limit: 2*verifyReach + 2})
	if err != nil {
		return nil, err
	}
	bySeq := make(map[int64][]byte, len(near))
	byHash := make(map[string]int64, len(near))
	for _, n := range near {
		bySeq[n.Sequence] = n.Hash
		byHash[string(n.Hash)] = n.Sequence
	}
	// hashAt is the hash an event at q+1 links to: the anchor's at the anchor (genesis at 0), else the
	// stored hash of event q (nil when not stored or out of reach).
	hashAt := func(q int64) []byte {
		switch {
		case q == w.st.AnchorSeq:
			return w.st.AnchorHash
		case q < w.st.AnchorSeq:
			return nil
		}
		return bySeq[q]
	}

	if selfOK {
		// e is intact but does not link to the event before it.
		if s-1 == w.st.AnchorSeq {
			what := "the retention anchor"
			if s == 1 {
				what = "the genesis hash"
			}
			return found(s, ProblemChanged, "event %d does not link to %s", s, what), nil
		}
		if before := hashAt(s - 2); before != nil && bytes.Equal(e.PreviousHash, before) {
			return found(s-1, ProblemInserted, "event %d links to event %d: event %d was inserted between them", s, s-2, s-1), nil
		}
		if s == start {
			return found(s-1, ProblemChanged, "event %d, before the range, was changed: the range's first event does not link to it", s-1), nil
		}
		return found(s-1, ProblemChanged, "event %d was changed and re-hashed: event %d does not link to it", s-1, s), nil
	}

	// e's fields do not give its hash: find the sequence they were hashed at, trying first the one after
	// the event its previous_hash names, then ever further either side.
	var cands []int64
	if n, ok := byHash[string(e.PreviousHash)]; ok && n+1 != s {
		cands = append(cands, n+1)
	}
	for d := int64(1); d <= verifyReach; d++ {
		cands = append(cands, s+d, s-d)
	}
	f := e.Fields()
	orig := int64(0)
	for _, o := range cands {
		if o < 1 {
			continue
		}
		f.Sequence = o
		if bytes.Equal(chain.Hash(e.PreviousHash, f), e.Hash) {
			orig = o
			break
		}
	}
	switch {
	case orig == 0:
		return found(s, ProblemChanged, "event %d was changed: its stored fields do not give its stored hash", s), nil
	case orig < s:
		if before := hashAt(orig - 1); before != nil && bytes.Equal(e.PreviousHash, before) {
			return found(orig, ProblemInserted, "event %d was appended as %d: events from %d were inserted before it", s, orig, orig), nil
		}
		return found(s, ProblemOutOfOrder, "event %d was appended as %d", s, orig), nil
	default:
		if _, ok := byHash[string(e.PreviousHash)]; ok || bytes.Equal(e.PreviousHash, hashAt(orig-1)) {
			return found(s, ProblemOutOfOrder, "event %d was appended as %d", s, orig), nil
		}
		return found(s, ProblemMissing, "event %d was appended as %d and the event it links to is gone: events from %d were removed and later ones renumbered", s, orig, s), nil
	}
}
