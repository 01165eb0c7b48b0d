package projector

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/statepipe/statepipe/schema"
)

// The records fetched ahead of the batch loop are bounded by count and by bytes: enough to keep
// the workers busy while the loop inserts a batch (1,024 300-message reports are about 12 MiB
// as fetched, 30 MiB decoded), and no more than readAheadBytes as fetched however large the
// reports are (a record over it is fetched alone).
const (
	readAheadRecords = 1024
	readAheadBytes   = 32 << 20
)

// readAhead fetches a generation's records ahead of the batch loop and checks each on workers
// of their own — the vouch signature, the decode and the validation, which depend on the
// record alone — so that this work runs on every core, and while the loop waits for the
// store, instead of one record at a time between inserts. The loop takes the records in fetch
// order and does what depends on the batch (reference data, serial conflicts) itself. Records
// fetched ahead and never taken (the generation ended) were not committed: whoever owns their
// partition next folds them.
type readAhead struct {
	out    chan *fetched // in fetch order
	ended  chan struct{} // closed when a fetch returned the end of the generation (or of ctx)
	endErr error         // that error, set before ended is closed
	cancel context.CancelFunc
	wg     sync.WaitGroup
	bytes  *semaphore.Weighted // the bytes of the records fetched and not yet taken
}

// fetched is one record with what check found, ready once done is closed; or, with err set,
// the end of the generation (or of ctx).
type fetched struct {
	rec    Record
	err    error
	pre    checked
	done   chan struct{}
	weight int64 // its share of readAheadBytes
}

// checked is what the record alone says: a report to fold (r, with its acceptance time),
// reference data to fold (ref), nothing (skip: a tombstone), or a dead letter (reason, cause).
type checked struct {
	r        *schema.Report
	ref      bool
	skip     bool
	accepted int64
	reason   string
	cause    error
}

// startReadAhead starts fetching gen's records until stop is called.
func (pr *Projector) startReadAhead(ctx context.Context, gen Generation) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	ra := &readAhead{out: make(chan *fetched, readAheadRecords), ended: make(chan struct{}), cancel: cancel,
		bytes: semaphore.NewWeighted(readAheadBytes)}
	jobs := make(chan *fetched, readAheadRecords)
	workers := max(1, runtime.GOMAXPROCS(0))
	ra.wg.Add(1 + workers)
	for range workers {
		go func() {
			defer ra.wg.Done()
			for f := range jobs {
				if ctx.Err() == nil { // stopping: what is left is dropped, not checked
					f.pre = pr.check(&f.rec)
				}
				close(f.done)
			}
		}()
	}
	go func() {
		defer ra.wg.Done()
		defer close(jobs)
		for {
			f := &fetched{done: make(chan struct{})}
			f.rec, f.err = pr.fetchNext(ctx, gen)
			if f.err == nil {
				f.weight = min(int64(len(f.rec.Key)+len(f.rec.Value)), readAheadBytes)
				if ra.bytes.Acquire(ctx, f.weight) != nil {
					return
				}
				select {
				case jobs <- f:
				case <-ctx.Done():
					return
				}
			} else {
				// The generation ended: the loop hears it at once, not behind the records
				// fetched ahead (they are dropped uncommitted, and redelivered to the next owner).
				ra.endErr = f.err
				close(ra.ended)
				close(f.done)
				return
			}
			select {
			case ra.out <- f:
			case <-ctx.Done():
				return
			}
			if f.err != nil {
				return
			}
		}
	}()
	return ra
}

// stop ends the read-ahead and waits for its goroutines.
func (ra *readAhead) stop() {
	ra.cancel()
	ra.wg.Wait()
}

// next returns the next record and what check found, waiting until at most until (then an
// error wrapping context.DeadlineExceeded); the end of the generation and of ctx are returned.
func (ra *readAhead) next(ctx context.Context, until time.Time) (*fetched, error) {
	select {
	case <-ra.ended:
		return nil, ra.endErr
	default:
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ra.ended:
		return nil, ra.endErr
	case f := <-ra.out:
		<-f.done
		ra.bytes.Release(f.weight)
		if f.err != nil {
			return nil, f.err
		}
		return f, nil
	case <-t.C:
		return nil, fmt.Errorf("no record before the batch's deadline: %w", context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetchNext returns the next record of gen, retrying a failed fetch with back-off; the end of
// the generation and of ctx are returned.
func (pr *Projector) fetchNext(ctx context.Context, gen Generation) (Record, error) {
	var rec Record
	err := pr.retry.do(ctx, "fetch from kafka", pr.m.kafkaErrors.WithLabelValues(opFetch), func() error {
		var err error
		rec, err = gen.Fetch(ctx)
		if err != nil && (ctx.Err() != nil || errors.Is(err, ErrGenerationEnded)) {
			return permanent{err}
		}
		return err
	})
	return rec, err
}

// check decides what the record alone makes of it (see admit): only records an ingest of the
// site vouched for are folded (with Params.Vouch set), and the acceptance time is the vouched
// statepipe-accepted header's. No record can stop the projector: a panic while decoding or
// checking one (a decoder bug) is recovered and the record dead-lettered "undecodable".
func (pr *Projector) check(rec *Record) (c checked) {
	defer func() {
		if p := recover(); p != nil {
			c = checked{reason: reasonUndecodable, cause: fmt.Errorf("BUG: decoding the record panicked: %v", p)}
			pr.p.Logger.Error("decoding a record panicked", "partition", rec.Partition, "offset", rec.Offset, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	c.ref = pr.isRef(rec)
	if c.ref && rec.Value == nil {
		return checked{skip: true} // a tombstone (compaction delete): nothing to fold
	}
	accepted, err := schema.ParseAccepted(rec.header(schema.HeaderAccepted))
	if err != nil {
		return checked{reason: reasonUnvouched, cause: err}
	}
	if len(pr.p.Vouch) > 0 {
		if err := schema.VerifyVouch(pr.p.Vouch, rec.Topic, rec.Key, rec.Value, rec.header(schema.HeaderVouch), accepted); err != nil {
			return checked{reason: reasonUnvouched, cause: err}
		}
	}
	if accepted == 0 {
		accepted = rec.Time.UnixMilli() // reference data; or records nothing vouches for (auth off)
	}
	c.accepted = accepted
	if c.ref {
		return c
	}
	r := new(schema.Report)
	if err := schema.DecodeReportLimits(rec.Value, r, recordLimits); err != nil {
		return checked{reason: reasonUndecodable, cause: err}
	}
	if err := r.Validate(schema.Limits{}); err != nil {
		return checked{reason: reasonInvalid, cause: err}
	}
	if string(rec.Key) != r.Client {
		return checked{reason: reasonInvalid, cause: fmt.Errorf("record key %q is not the report's client %q: ingest keys every report by its client", rec.Key, r.Client)}
	}
	c.r = r
	return c
}
