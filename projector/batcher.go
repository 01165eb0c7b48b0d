package projector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/schema"
)

// The batcher: one goroutine fetches records of the generation's partitions, admits each
// (decode, vouch, conflict check; a record that cannot be folded is dead-lettered), folds the
// reports into a batch, and flushes the batch — insert, index, commit — once it holds
// BatchMessages state messages or its first record is BatchWait old. Committing only after
// the store acknowledged, in fetch order, makes the committed offset the highest below which
// all is stored.

// batch is the batch being built.
type batch struct {
	rows     *fold.Batch      // the rows of its reports and reference data
	pending  []Record         // its records, to commit after the insert
	reports  []*schema.Report // its decoded reports, kept alive until the batch is written
	recs     []fold.Record    // the same with their positions, for the index
	deadline time.Time        // when it must flush (BatchWait after its first record)
}

func newBatch(db string) *batch { return &batch{rows: fold.NewBatch(db)} }

// full reports whether the batch must flush now: it holds max state messages, or its
// deadline passed.
func (b *batch) full(max int) bool {
	return b.rows.Size() >= max || !time.Now().Before(b.deadline)
}

// arrived is when the batch's last record was produced (now for an empty batch): the time the
// serial tracker ages gaps from.
func (b *batch) arrived() time.Time {
	if len(b.pending) == 0 {
		return time.Now()
	}
	return b.pending[len(b.pending)-1].Time
}

func (b *batch) reset() {
	b.rows.Reset()
	b.pending = b.pending[:0]
	clear(b.reports)
	b.reports = b.reports[:0]
	clear(b.recs)
	b.recs = b.recs[:0]
}

// chores are the periodic work of a generation besides folding: asking for resyncs of gaps
// that aged without new records, and looking at reference data.
type chores struct {
	sweep, refPoll time.Time // when each is due next
}

// generation folds the records of one generation's partitions until it ends (the group
// rebalances: ErrGenerationEnded) or ctx is done. Records fetched and not committed then are
// redelivered to whoever owns their partition next; Run tells the two apart.
func (pr *Projector) generation(ctx context.Context, gen Generation) error {
	pr.cur = gen
	if err := pr.own(ctx, gen); err != nil {
		return err
	}
	clear(pr.liveSerials) // own may have restored the index
	b := newBatch(pr.cfg.Database)
	due := chores{sweep: time.Now().Add(pr.resync.sweepEvery()), refPoll: time.Now().Add(pr.cfg.RefPoll)}
	ra := pr.startReadAhead(ctx, gen)
	defer ra.stop()
	for {
		f, err := ra.next(ctx, pr.wake(b, due))
		switch {
		case err == nil:
			if err := pr.add(ctx, b, f); err != nil {
				return err
			}
			if !b.full(pr.cfg.BatchMessages) {
				continue
			}
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			// Nothing arrived in time: flush what lingered, and do the chores due.
			if err := pr.doChores(ctx, &due); err != nil {
				return err
			}
			if len(b.pending) == 0 {
				continue
			}
		default:
			return err // the generation ended, or ctx is done
		}
		if err := pr.flush(ctx, b); err != nil {
			return err
		}
		if err := pr.resync.track(ctx, b.reports, b.arrived()); err != nil {
			return err
		}
		// Under steady load fetches never time out: look at reference data here too.
		if err := pr.pollRefIfDue(ctx, &due.refPoll); err != nil {
			return err
		}
		b.reset()
		clear(pr.liveSerials)
	}
}

// wake is how long to wait for the next record: until the batch must flush, gaps must be
// swept or reference data looked at.
func (pr *Projector) wake(b *batch, due chores) time.Time {
	wait := due.sweep
	if pr.idx != nil && due.refPoll.Before(wait) {
		wait = due.refPoll
	}
	if len(b.pending) > 0 && b.deadline.Before(wait) {
		wait = b.deadline
	}
	return wait
}

// doChores asks for resyncs of gaps that aged and looks at reference data, each when due.
func (pr *Projector) doChores(ctx context.Context, due *chores) error {
	if time.Now().After(due.sweep) {
		if err := pr.resync.requestDue(ctx, time.Now()); err != nil {
			return err
		}
		due.sweep = time.Now().Add(pr.resync.sweepEvery())
	}
	return pr.pollRefIfDue(ctx, &due.refPoll)
}

// add admits one fetched record into the batch: folded, skipped, or dead-lettered.
func (pr *Projector) add(ctx context.Context, b *batch, f *fetched) error {
	rec := f.rec
	if len(b.pending) == 0 {
		b.deadline = time.Now().Add(pr.cfg.BatchWait)
	}
	b.pending = append(b.pending, rec)
	if !pr.isRef(&rec) {
		b.rows.Processed(rec.Partition, rec.Offset)
	}
	r, accepted, reason, cause := pr.admit(b.rows, f)
	switch {
	case reason != "":
		return pr.deadLetter(ctx, &rec, reason, cause)
	case r != nil:
		b.reports = append(b.reports, r)
		fr := fold.Record{Partition: rec.Partition, Offset: rec.Offset, AcceptedAt: accepted, Report: r}
		b.recs = append(b.recs, fr)
		b.rows.Add(fr)
	}
	return nil
}

// isRef reports whether rec is from the reference-data topic; every other record is a report.
func (pr *Projector) isRef(rec *Record) bool {
	return pr.cfg.RefTopic != "" && rec.Topic == pr.cfg.RefTopic
}

// flush inserts the batch, retrying with back-off until the store acknowledges, folds it into
// the index and writes the aggregate cells it changed, then commits.
func (pr *Projector) flush(ctx context.Context, b *batch) error {
	if err := pr.retry.do(ctx, "insert the batch", pr.m.storeErrors, func() error {
		start := time.Now()
		if err := pr.insert(ctx, b.rows); err != nil {
			return err
		}
		took := time.Since(start)
		pr.m.insertTime.Observe(took.Seconds())
		pr.inserts.Add(1)
		pr.insertNanos.Add(int64(took))
		return nil
	}, "messages", b.rows.Messages()); err != nil {
		return err
	}
	if err := pr.indexBatch(ctx, b.rows.RefRecords() > 0, b.pending, b.recs); err != nil {
		return err
	}
	pr.commit(ctx, b)
	return nil
}

// insert writes the raw log first, then the derived tables: if a later insert fails, the
// retry rewrites them all, and every table's rows are idempotent.
func (pr *Projector) insert(ctx context.Context, rows *fold.Batch) error {
	for _, t := range rows.Tables() {
		if err := pr.p.Store.Insert(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// commit commits the stored batch's offsets. A failed commit is not retried: after a
// rebalance the partition may belong to another member, which redelivers the batch; its rows
// are identical, so nothing doubles. The next batch's commit covers this one's offsets.
func (pr *Projector) commit(ctx context.Context, b *batch) {
	if err := pr.cur.Commit(ctx, b.pending...); err != nil {
		if ctx.Err() != nil {
			return
		}
		pr.m.kafkaErrors.WithLabelValues(opCommit).Inc()
		pr.p.Logger.Warn("cannot commit offsets after insert; the batch will be redelivered", "records", len(b.pending), "err", err)
	}
	now := time.Now()
	type tp struct {
		topic     string
		partition int
	}
	next := map[tp]int64{}
	for _, m := range b.pending {
		pr.m.visible.Observe(now.Sub(m.Time).Seconds())
		k := tp{m.Topic, m.Partition}
		next[k] = max(next[k], m.Offset+1)
	}
	for k, o := range next {
		pr.m.offset.WithLabelValues(k.topic, strconv.Itoa(k.partition)).Set(float64(o))
	}
	pr.m.records.Add(float64(len(b.pending)))
	pr.m.folded.Add(float64(b.rows.Messages()))
	pr.m.batches.Inc()
}

// admit decides what becomes of one fetched record: a report to fold (r) with its acceptance
// time, nothing (a reference-data record, folded into the batch here, or a tombstone), or a
// dead letter (reason and cause). What the record alone decides, check decided ahead
// (readahead.go); here, what depends on the batch: reference data joins it in order, and a
// report that reuses a serial for another message is refused. No record can stop the
// projector: a panic is recovered and the record dead-lettered "undecodable".
func (pr *Projector) admit(rows *fold.Batch, f *fetched) (r *schema.Report, accepted int64, reason string, cause error) {
	defer func() {
		if p := recover(); p != nil {
			r, reason, cause = nil, reasonUndecodable, fmt.Errorf("BUG: folding the record panicked: %v", p)
			pr.p.Logger.Error("folding a record panicked", "partition", f.rec.Partition, "offset", f.rec.Offset, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	c := &f.pre
	switch {
	case c.reason != "":
		return nil, 0, c.reason, c.cause
	case c.skip:
		return nil, 0, "", nil
	case c.ref:
		if err := rows.AddRef(string(f.rec.Key), f.rec.Value, f.rec.Offset, c.accepted); err != nil {
			return nil, 0, reasonUndecodable, err
		}
		return nil, 0, "", nil
	}
	if err := pr.conflict(rows, c.r); err != nil {
		return nil, 0, reasonSerialConflict, err
	}
	return c.r, c.accepted, "", nil
}

// recordLimits decode the records of the state topic: any message count (a site may raise
// --ingest.max-messages; memory is bounded by the decoder's 4× budget and the topic's record
// size), every other bound as at ingest.
var recordLimits = func() schema.Limits {
	l := schema.DefaultLimits
	l.MaxMessages = math.MaxInt
	return l
}()

// conflict returns an error naming the first message of r whose serial the client already
// used for another message (a serial seen before with other content is rejected and counted,
// never folded): a serial names one message of its client, whatever its key. It looks at
// every message of the batch being built and at every live key of the index; a serial whose
// message has since been superseded by a greater serial of its key is outside that window —
// the raw log then keeps both messages (ddl/0010), so nothing acknowledged is lost and a
// rebuild folds what the live tables folded. A report with a conflict is refused whole — a
// report is atomic, and one that rewrites history is suspect — and goes to the dead-letter
// topic. Exact duplicates are not conflicts.
func (pr *Projector) conflict(b *fold.Batch, r *schema.Report) error {
	var live map[uint64]index.SerialKey // the client's live keys by serial, looked up once
	for i := range r.Messages {
		m := &r.Messages[i]
		if prev, ok := b.AtSerial(r.Client, m.Serial); ok && !fold.SameMessage(prev, m) {
			if cur, keyed := b.State(r.Client, prev.TopicType, prev.TopicID); !keyed || cur.Serial <= m.Serial {
				return conflictError(r, i, prev.TopicType, prev.TopicID, prev.State, prev.Error)
			} // else its key moved on earlier in this batch: that message is not live
		}
		if pr.idx == nil || m.Serial > pr.idx.MaxSerial(r.Client) {
			continue // above every live key's serial: new (the usual report)
		}
		// The message's own key at this very serial: a duplicate or a conflict, at once.
		if m.TopicType.Keyed() {
			if serial, state, errCode, ok := pr.idx.State(r.Client, m.TopicType, m.TopicID); ok && serial == m.Serial {
				if int32(state) != m.State || errCode != m.Error {
					return conflictError(r, i, m.TopicType, m.TopicID, int32(state), errCode)
				}
				continue
			}
		}
		// Another key at this serial: the client's live keys by serial, built once per
		// client and batch (the index does not change while a batch is built), so a report
		// re-sent whole costs its own size, not its size times the client's keys.
		if live == nil {
			if live = pr.liveSerials[r.Client]; live == nil {
				live = pr.idx.LiveSerials(r.Client)
				pr.liveSerials[r.Client] = live
			}
		}
		k, ok := live[m.Serial]
		if !ok || (k.TopicType == m.TopicType && k.TopicID == m.TopicID && int32(k.State) == m.State && k.Err == m.Error) {
			continue
		}
		if cur, moved := b.State(r.Client, k.TopicType, k.TopicID); moved && cur.Serial > m.Serial {
			continue // the key moved on earlier in this batch: its message at this serial is not live
		}
		return conflictError(r, i, k.TopicType, k.TopicID, int32(k.State), k.Err)
	}
	return nil
}

func conflictError(r *schema.Report, i int, tt schema.TopicType, topicID string, state, errCode int32) error {
	m := &r.Messages[i]
	return &schema.FieldError{Field: fmt.Sprintf("messages[%d].serial", i), Reason: fmt.Sprintf(
		"client %s already reported serial %d for %d/%s with state %d error 0x%08X; this report says %d/%s state %d error 0x%08X",
		r.Client, m.Serial, tt, topicID, state, uint32(errCode), m.TopicType, m.TopicID, m.State, uint32(m.Error))}
}

// Headers a dead letter carries besides the record's own.
const (
	headerDLQReason = "statepipe-dlq-reason" // reason: cause
	headerDLQSource = "statepipe-dlq-source" // topic/partition/offset the record was read from
)

// deadLetter produces rec to the dead-letter topic with the reason and its source position,
// retrying until Kafka acknowledges, and counts it.
func (pr *Projector) deadLetter(ctx context.Context, rec *Record, reason string, cause error) error {
	pr.p.Logger.Warn("dead-lettering record", "partition", rec.Partition, "offset", rec.Offset, "reason", reason, "err", cause)
	if pr.p.DeadLetters == nil {
		return fmt.Errorf("cannot dead-letter record %s/%d/%d (%s): no dead-letter topic configured", rec.Topic, rec.Partition, rec.Offset, reason)
	}
	dl := Record{
		Key:   rec.Key,
		Value: rec.Value,
		Headers: append(append(make([]Header, 0, len(rec.Headers)+2), rec.Headers...),
			Header{Key: headerDLQReason, Value: []byte(reason + ": " + cause.Error())},
			Header{Key: headerDLQSource, Value: []byte(fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset))}),
	}
	if err := pr.retry.do(ctx, "write to the dead-letter topic", pr.m.kafkaErrors.WithLabelValues(opDeadLetter), func() error {
		return pr.p.DeadLetters.Produce(ctx, dl)
	}, "reason", reason); err != nil {
		return err
	}
	pr.m.deadLetters.WithLabelValues(reason).Inc()
	return nil
}
