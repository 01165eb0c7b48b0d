package projector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// resyncer is the projector's side of resync (folding rule 5): it feeds every committed
// report to the Tracker, publishes a request (key client, JSON value) to resync.<site> for
// each client whose serial gap aged past ResyncAfter, and an answer (key client, no value)
// when a full report of a client with an open request arrived. Ingest mirrors the topic and
// asks those clients for a full report in its answers.
type resyncer struct {
	tracker *Tracker
	out     Producer // resync.<site>; nil: resync disabled
	// open mirrors resync.<site>: a full report from a client with an open request (from an
	// administrator, another projector process, or before a restart) answers it; nil: none.
	open  interface{ Has(client string) bool }
	after time.Duration // ResyncAfter; 0: gaps are never asked for
	retry retrier
	// published counts the records published by reason (resyncGap, resyncAnswered);
	// failures the produce attempts that failed.
	published *prometheus.CounterVec
	failures  prometheus.Counter
	log       *slog.Logger
}

// sweepEvery is how often aged gaps are looked for when no records arrive.
func (r *resyncer) sweepEvery() time.Duration {
	if r.after <= 0 {
		return time.Hour
	}
	return min(max(r.after/4, 50*time.Millisecond), 30*time.Second)
}

// track feeds the committed batch's reports (the latest arrived at at) to the tracker,
// publishes an answer for every outstanding request a full report answered, then the requests
// for aged gaps.
func (r *resyncer) track(ctx context.Context, reports []*schema.Report, at time.Time) error {
	if r.out == nil {
		return nil
	}
	var answers []Record
	serials := make([]uint64, 0, 64)
	for _, rep := range reports {
		if rep.Via != "" {
			// Relayed (ConfigMgr): its serials skip what ConfigMgr numbered and statepipe
			// does not model, and its client cannot answer a request.
			continue
		}
		serials = serials[:0]
		for i := range rep.Messages {
			serials = append(serials, rep.Messages[i].Serial)
		}
		fullFrom := uint64(0)
		if len(rep.FullTypes) > 0 {
			fullFrom = rep.LowestSerial()
		}
		answered := r.tracker.Observe(rep.Client, serials, fullFrom, at)
		if fullFrom > 0 && r.open != nil && r.open.Has(rep.Client) {
			answered = true
		}
		if answered && !slices.ContainsFunc(answers, func(a Record) bool { return string(a.Key) == rep.Client }) {
			answers = append(answers, Record{Key: []byte(rep.Client)}) // tombstone: answered
		}
	}
	if err := r.publish(ctx, resyncAnswered, answers); err != nil {
		return err
	}
	return r.requestDue(ctx, time.Now())
}

// requestDue publishes a request for every client whose gap is older than ResyncAfter at now.
func (r *resyncer) requestDue(ctx context.Context, now time.Time) error {
	if r.out == nil || r.after <= 0 {
		return nil
	}
	due := r.tracker.Due(now, r.after)
	if len(due) == 0 {
		return nil
	}
	recs := make([]Record, len(due))
	for i, c := range due {
		contiguous, _ := r.tracker.Contiguous(c)
		recs[i] = Record{Key: []byte(c), Value: []byte(fmt.Sprintf(`{"client":%q,"reason":"gap","contiguous":%d}`, c, contiguous))}
	}
	if err := r.publish(ctx, resyncGap, recs); err != nil {
		return err
	}
	r.log.Info("requested resync for clients with aged serial gaps", "clients", len(recs))
	return nil
}

// publish produces recs to the resync topic, retrying until Kafka acknowledges, and counts
// them under reason.
func (r *resyncer) publish(ctx context.Context, reason string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := r.retry.do(ctx, "publish to the resync topic", r.failures, func() error { return r.out.Produce(ctx, recs...) }, "records", len(recs)); err != nil {
		return err
	}
	r.published.WithLabelValues(reason).Add(float64(len(recs)))
	return nil
}

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
	contiguous uint64 // every serial from the first seen up to here has arrived
	// pending: serials above contiguous+1 that have arrived; nil without a gap. A Go map
	// never shrinks, so serials that arrive in order never enter it, and an emptied one is
	// dropped: otherwise each client would keep a map of its largest report's size.
	pending   map[uint64]struct{}
	gapSince  time.Time // when the oldest open gap was first seen
	requested bool      // a resync request is out and not yet answered
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker { return &Tracker{clients: map[string]*serialState{}} }

// Observe records that a report of client with the given serials arrived at time at;
// fullFrom is the report's smallest serial when it is a full report, else 0. It returns true
// when the report answers an outstanding resync request. It sorts serials in place.
func (t *Tracker) Observe(client string, serials []uint64, fullFrom uint64, at time.Time) (answered bool) {
	slices.Sort(serials)
	s, ok := t.clients[client]
	if !ok {
		s = &serialState{contiguous: serials[0] - 1}
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
	before := s.contiguous
	for _, v := range serials {
		switch {
		case v <= s.contiguous:
		case v == s.contiguous+1 && len(s.pending) == 0:
			s.contiguous = v
		default:
			if s.pending == nil {
				s.pending = map[uint64]struct{}{}
			}
			s.pending[v] = struct{}{}
		}
	}
	for len(s.pending) > 0 {
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
		s.pending = nil
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
