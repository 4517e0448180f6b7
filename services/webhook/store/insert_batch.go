package store

import (
	"cmp"
	"slices"
)

// BatchPlan is how a driver stores a batch (EventInsertBatch): Insert are the indexes in the batch of
// the events to insert, the first of each (source, dedupe key), sorted by that key; First[i] is the
// index of the first event with event i's key (i itself for those inserted).
//
// The sort makes concurrent batches (from several replicas) take the unique index's entries in one
// order, so that two of them waiting on each other's uncommitted keys cannot deadlock; a later event
// with an earlier one's key is answered from it, never inserted, so that the outcome does not depend on
// how a backend treats two equal keys in one statement.
type BatchPlan struct {
	Insert []int
	First  []int
}

// PlanBatch plans the insertion of es.
func PlanBatch(es []*Event) BatchPlan {
	type key struct{ source, dedupe string }
	p := BatchPlan{First: make([]int, len(es))}
	seen := make(map[key]int, len(es))
	for i, e := range es {
		k := key{e.Source, e.DedupeKey}
		if j, ok := seen[k]; ok {
			p.First[i] = j
			continue
		}
		seen[k] = i
		p.First[i] = i
		p.Insert = append(p.Insert, i)
	}
	slices.SortFunc(p.Insert, func(a, b int) int {
		return cmp.Or(cmp.Compare(es[a].Source, es[b].Source), cmp.Compare(es[a].DedupeKey, es[b].DedupeKey))
	})
	return p
}

// Answer fills the results of the events that were not inserted because an earlier one in the batch
// has their key: the earlier one's stored event, as a duplicate. out holds the results of p.Insert.
func (p BatchPlan) Answer(out []Inserted) {
	for i, f := range p.First {
		if f != i {
			out[i] = Inserted{Event: out[f].Event, Duplicate: true}
		}
	}
}
