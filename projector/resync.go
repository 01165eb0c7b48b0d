package projector

import (
	"sort"
	"time"
)

// Tracker follows each client's serials to find gaps (folding rule 5): the site tracks each
// client's highest contiguous serial; a gap older than resync-after makes the next ingest
// answer to that client carry a resync request, which the client answers with a full report.
//
// A full report (any full topic type) with smallest serial S answers every gap below S: what
// was missing is superseded. Serials below the first one seen are not gaps (a client may
// start anywhere). The tracker is per projector process and in memory: it sees every record
// of the partitions it owns, in order of arrival.
type Tracker struct {
	clients map[string]*serialState
}

type serialState struct {
	contiguous uint64              // every serial from the first seen up to here has arrived
	pending    map[uint64]struct{} // serials above contiguous+1 that have arrived
	gapSince   time.Time           // when the oldest open gap was first seen
	requested  bool                // a resync request is out and not yet answered
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{clients: map[string]*serialState{}} }

// Observe records that a report of client with the given serials arrived at time at;
// fullFrom is the report's smallest serial when it is a full report, else 0. It returns true
// when the report answers an outstanding resync request.
func (t *Tracker) Observe(client string, serials []uint64, fullFrom uint64, at time.Time) (answered bool) {
	s, ok := t.clients[client]
	if !ok {
		lowest := serials[0]
		for _, v := range serials {
			lowest = min(lowest, v)
		}
		s = &serialState{contiguous: lowest - 1, pending: map[uint64]struct{}{}}
		t.clients[client] = s
	}
	if fullFrom > 0 && fullFrom-1 > s.contiguous {
		s.contiguous = fullFrom - 1 // the full report supersedes whatever is missing below it
		if s.requested {
			answered = true
			s.requested = false
		}
	} else if fullFrom > 0 && s.requested {
		answered = true
		s.requested = false
	}
	for _, v := range serials {
		if v > s.contiguous {
			s.pending[v] = struct{}{}
		}
	}
	before := s.contiguous
	for {
		if _, ok := s.pending[s.contiguous+1]; !ok {
			break
		}
		delete(s.pending, s.contiguous+1)
		s.contiguous++
	}
	if s.contiguous != before && len(s.pending) > 0 {
		// The oldest gap closed but a newer one is open: it is only as old as now (the
		// tracker does not remember when each gap opened; erring late is safe).
		s.gapSince = at
	}
	for v := range s.pending {
		if v <= s.contiguous {
			delete(s.pending, v)
		}
	}
	switch {
	case len(s.pending) == 0:
		s.gapSince = time.Time{}
	case s.gapSince.IsZero():
		s.gapSince = at
	}
	return answered
}

// Due returns the clients whose oldest open gap is older than after and that have no request
// out, sorted, and marks them requested.
func (t *Tracker) Due(now time.Time, after time.Duration) []string {
	var due []string
	for c, s := range t.clients {
		if !s.requested && !s.gapSince.IsZero() && now.Sub(s.gapSince) >= after {
			s.requested = true
			due = append(due, c)
		}
	}
	sort.Strings(due)
	return due
}

// Contiguous returns the client's highest contiguous serial and whether it has an open gap.
func (t *Tracker) Contiguous(client string) (uint64, bool) {
	s, ok := t.clients[client]
	if !ok {
		return 0, false
	}
	return s.contiguous, len(s.pending) > 0
}
