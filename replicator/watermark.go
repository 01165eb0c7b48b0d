package replicator

import (
	"context"
	"slices"
	"sync"
	"time"
)

// tracker finds a site's watermark from its projector's progress: at each step it takes the
// end offsets of the projector's topics, and the newest set of end offsets the projector's
// group has committed past, taken at T, makes T the watermark — every record written before T
// is folded.
type tracker struct {
	progress Progress
	pending  []snapshot // end offsets taken, oldest first, not yet committed past
}

// snapshot is the end offsets of the projector's topics at a moment.
type snapshot struct {
	at   time.Time
	ends map[string]map[int]int64
}

// maxPending bounds the snapshots kept while the projector is behind (one per step): the
// oldest are dropped, which only makes the watermark coarser.
const maxPending = 600

// step is one reading of the progress at now.
type step struct {
	ends, committed map[string]map[int]int64
	passed          *snapshot // the newest snapshot now committed past; nil when none
}

// advance takes a snapshot at now and returns what the projector passed.
func (t *tracker) advance(ctx context.Context, now time.Time) (step, error) {
	ends, err := t.progress.Ends(ctx)
	if err != nil {
		return step{}, err
	}
	t.pending = append(t.pending, snapshot{at: now, ends: ends})
	if len(t.pending) > maxPending {
		t.pending = slices.Delete(t.pending, 0, len(t.pending)-maxPending)
	}
	committed, err := t.progress.Committed(ctx)
	if err != nil {
		return step{}, err
	}
	s := step{ends: ends, committed: committed}
	for i := len(t.pending) - 1; i >= 0; i-- {
		if behind(t.pending[i].ends, committed) == 0 {
			passed := t.pending[i]
			s.passed = &passed
			t.pending = slices.Delete(t.pending, 0, i+1)
			break
		}
	}
	return s, nil
}

// behind counts the records of ends the group has not committed past.
func behind(ends, committed map[string]map[int]int64) (n int64) {
	for topic, parts := range ends {
		for p, end := range parts {
			if c := committed[topic][p]; c < end {
				n += end - c
			}
		}
	}
	return n
}

// Watermark follows a site's own watermark (for the site's reports; the replicator of a site
// with a parent sends its own): every interval, the time before which every accepted report is
// folded, and the records accepted and not folded.
type Watermark struct {
	t        tracker
	interval time.Duration

	mu        sync.Mutex
	watermark time.Time
	lag       int64
	readAt    time.Time // the last successful reading
	started   time.Time
	folds     []foldSample // committed record counts over the last foldWindow, oldest first
}

// foldSample is the records the group had committed (summed over partitions) at a moment.
type foldSample struct {
	at    time.Time
	total int64
}

// foldWindow is the span the fold rate is measured over: several projector batches.
const foldWindow = 10 * time.Second

// NewWatermark follows the progress every interval.
func NewWatermark(p Progress, interval time.Duration) *Watermark {
	return &Watermark{t: tracker{progress: p}, interval: max(interval, 50*time.Millisecond)}
}

// Name says what it is in the node's logs.
func (w *Watermark) Name() string { return "watermark" }

// Run follows until ctx is done.
func (w *Watermark) Run(ctx context.Context) error {
	w.mu.Lock()
	w.started = time.Now()
	w.mu.Unlock()
	for {
		now := time.Now()
		if s, err := w.t.advance(ctx, now); err == nil {
			w.mu.Lock()
			if s.passed != nil {
				w.watermark = s.passed.at
			}
			w.lag = behind(s.ends, s.committed)
			w.readAt = now
			var total int64
			for _, parts := range s.committed {
				for _, c := range parts {
					total += c
				}
			}
			w.folds = append(w.folds, foldSample{now, total})
			for len(w.folds) > 2 && now.Sub(w.folds[1].at) >= foldWindow {
				w.folds = w.folds[1:]
			}
			w.mu.Unlock()
		}
		if !sleep(ctx, w.interval) {
			return nil
		}
	}
}

// Backlog is a site's projector backlog as last read.
type Backlog struct {
	// Records accepted and not folded; AgeSeconds is the age of the oldest of them (now − the
	// watermark, or since the follower started when no watermark was reached yet; 0 when
	// none wait).
	Records    int64
	AgeSeconds float64
	// FoldRate is the records folded a second over the last 10 s (0 when unknown).
	FoldRate float64
	// ReadAt is when the progress was last read (zero: never).
	ReadAt time.Time
}

// Backlog returns the backlog at now.
func (w *Watermark) Backlog(now time.Time) Backlog {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := Backlog{Records: w.lag, ReadAt: w.readAt}
	if w.lag > 0 {
		since := w.watermark
		if since.IsZero() {
			since = w.started
		}
		b.AgeSeconds = max(now.Sub(since).Seconds(), 0)
	}
	if n := len(w.folds); n >= 2 {
		first, last := w.folds[0], w.folds[n-1]
		if d := last.at.Sub(first.at).Seconds(); d > 0 {
			b.FoldRate = max(float64(last.total-first.total)/d, 0)
		}
	}
	return b
}

// Get returns the watermark (zero before the first) and the records not folded yet.
func (w *Watermark) Get() (time.Time, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watermark, w.lag
}
