package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

// The in-memory index (package index) turns folding into aggregate cells. Its life cycle in
// the projector:
//
//   - Ownership. Only the member of the consumer group a partition of the state topic is
//     assigned to writes that partition's cells. When a generation of the group gives this
//     process partitions it did not hold in the previous one (at start, after a rebalance),
//     it claims them (own, claim): it restores the index from the store — the store is
//     always at least as new as the committed offsets, and folding is idempotent, so
//     re-folding what the store already holds changes nothing —, writes every cell of those
//     partitions under a new epoch, asks the coordinator whether it still holds the
//     generation, and records the epoch in agg_fences. Readers count only the cells of a
//     partition's greatest epoch, so a member that lost the partition and still writes (one
//     evicted while busy) is never counted, whatever the order in which writes land.
//   - Whenever a record follows offsets this process did not fold (a restore that read a
//     partition while a batch was being inserted: torn), the index is restored again. The
//     cells the store holds (of the current epochs) are loaded too, and only differences
//     are written.
//   - Each batch: the base tables are inserted first, then the batch's reports fold into the
//     index and the changed cells are inserted, then offsets are committed. A crash anywhere
//     redelivers the batch to a process that restores from the store, so the cells always
//     end equal to a computation from the live state.
//   - Reference data folded in a batch, imported through another projector process, or an
//     expired update crossing the cleanup age recomputes every contribution (RefPoll).

// own takes the partitions generation gen assigned to this member: those it did not hold in
// the generation just before are restored and claimed; the others' cells are held back.
func (pr *Projector) own(ctx context.Context, gen Generation) error {
	consecutive := pr.gen != 0 && gen.ID() == pr.gen+1 // no other generation in between
	owned := map[int32]bool{}
	var gained []int32
	for _, p := range gen.Partitions(pr.cfg.Topic) {
		owned[int32(p)] = true
		if _, claimed := pr.epochs[int32(p)]; !claimed || !consecutive {
			gained = append(gained, int32(p))
		}
	}
	slices.Sort(gained)
	for p := range pr.epochs {
		if !owned[p] || !consecutive || slices.Contains(gained, p) {
			delete(pr.epochs, p)
		}
	}
	pr.gen = gen.ID()
	pr.m.owned.Set(float64(len(owned)))
	pr.p.Logger.Info("joined a generation of the consumer group", "generation", gen.ID(), "member", gen.Member(),
		"partitions", len(owned), "taken_over", gained)
	if pr.p.Reader == nil {
		return nil
	}
	if pr.idx != nil && len(gained) == 0 {
		clear(pr.unclaimed)
		pr.applyEpochs()
		return nil
	}
	if err := pr.restore(ctx); err != nil {
		return err
	}
	clear(pr.unclaimed)
	for _, p := range gained {
		pr.unclaimed[p] = true
	}
	return pr.claimReady(ctx)
}

// claimReady claims the partitions taken over that are not torn. A partition is torn when
// the restore found a batch begun beyond what its tables hold: one its previous owner was
// still inserting (an evicted member) or abandoned half-way (stopped in the middle). Its
// records from the committed offset on are folded again and repair the view, but a whole
// rewrite must wait until the index has folded past that batch: until then its cells stay
// those of the previous epoch, which readers keep counting.
func (pr *Projector) claimReady(ctx context.Context) error {
	if len(pr.unclaimed) == 0 {
		return nil
	}
	torn := pr.idx.Torn()
	var ready []int32
	for p := range pr.unclaimed {
		if !slices.Contains(torn, p) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		pr.p.Logger.Debug("partitions taken over wait to be folded past a batch begun before", "torn", torn)
		return nil
	}
	slices.Sort(ready)
	if err := pr.claim(ctx, pr.cur, ready); err != nil {
		return err
	}
	for _, p := range ready {
		delete(pr.unclaimed, p)
	}
	return nil
}

// claim writes every cell of the gained partitions under a new epoch each, then — if this
// member still holds the generation — records the epochs in agg_fences, from which on
// readers count those cells (ddl/0009).
func (pr *Projector) claim(ctx context.Context, gen Generation, gained []int32) (err error) {
	defer func() {
		if err != nil { // not claimed: hold the cells back (a later generation claims again)
			for _, p := range gained {
				delete(pr.epochs, p)
				pr.idx.SetEpoch(p, -1)
			}
		}
	}()
	greatest := map[int32]uint64{}
	if err := pr.retry(ctx, "read the partitions' epochs", pr.m.storeErrors, func() error {
		return pr.p.Reader.Each(ctx, "SELECT partition, max(epoch) FROM "+pr.cfg.Database+".agg_fences GROUP BY partition", func(r []any) error {
			greatest[int32(r[0].(int64))] = schema.ToUint64(r[1])
			return nil
		})
	}, nil); err != nil {
		return err
	}
	fences := NewFenceRows(pr.cfg.Database)
	for _, p := range gained {
		epoch := ((greatest[p]>>32)+1)<<32 | uint64(uint32(gen.ID()))
		pr.idx.Rewrite(p, int64(epoch))
		pr.epochs[p] = int64(epoch)
		fences.Add(p, epoch, gen.ID(), gen.Member())
	}
	if err := pr.writeAggregates(ctx); err != nil {
		return err
	}
	// The check that makes a late claim harmless: a member whose generation ended may not
	// record an epoch (one that already checked and records late read the same counter as
	// the next owner, and the next owner's generation is greater).
	if err := pr.retry(ctx, "ask the group coordinator whether this member still holds its partitions", pr.m.kafkaErrors.WithLabelValues("alive"), func() error {
		err := gen.Alive(ctx)
		if errors.Is(err, kafkago.ErrGenerationEnded) {
			return permanent{err}
		}
		return err
	}, nil); err != nil {
		return err
	}
	if err := pr.retry(ctx, "record the partitions' epochs", pr.m.storeErrors, func() error {
		return pr.p.Store.Insert(ctx, fences)
	}, nil); err != nil {
		return err
	}
	pr.m.claims.Add(float64(len(gained)))
	pr.p.Logger.Info("took partitions over", "generation", gen.ID(), "partitions", gained)
	pr.dropOldEpochs(ctx, gained)
	return nil
}

// dropOldEpochs deletes the cells of the claimed partitions' earlier epochs, which no reader
// counts any more, so that a restart or rebalance does not leave a copy of every cell behind
// for the reports to skip. It is a ClickHouse mutation, run in the background; failing is
// harmless (the rows are never counted), so it is only logged. Rows an evicted member writes
// under its old epoch after the mutation began stay, uncounted.
func (pr *Projector) dropOldEpochs(ctx context.Context, claimed []int32) {
	ex, ok := pr.p.Store.(interface {
		Exec(ctx context.Context, query string) error
	})
	if !ok {
		return
	}
	conds := make([]string, len(claimed))
	for i, p := range claimed {
		conds[i] = fmt.Sprintf("(partition = %d AND epoch < %d)", p, uint64(pr.epochs[p]))
	}
	for _, t := range []string{"agg_states", "agg_errors", "agg_lists", "agg_scans"} {
		q := "ALTER TABLE " + pr.cfg.Database + "." + t + " DELETE WHERE " + strings.Join(conds, " OR ")
		if err := ex.Exec(ctx, q); err != nil && ctx.Err() == nil {
			pr.p.Logger.Warn("cannot delete the cells of earlier epochs (they are not counted)", "table", t, "err", err)
		}
	}
}

// applyEpochs gives the index the epochs of the partitions this process claimed; the cells of
// every other partition are held back.
func (pr *Projector) applyEpochs() {
	pr.idx.SetDefaultEpoch(-1)
	for _, p := range pr.idx.Partitions() {
		if e, ok := pr.epochs[p]; ok {
			pr.idx.SetEpoch(p, e)
		} else {
			pr.idx.SetEpoch(p, -1)
		}
	}
}

// restore replaces the index with one restored from the store, retrying until the store
// answers, and writes the cells that differ from what the store holds.
func (pr *Projector) restore(ctx context.Context) error {
	return pr.retry(ctx, "restore the index", pr.m.storeErrors, func() error {
		start := time.Now()
		fp, err := refFingerprint(ctx, pr.p.Reader, pr.cfg.Database)
		if err != nil {
			return err
		}
		x, err := RestoreIndex(ctx, pr.p.Reader, pr.cfg.Database, pr.cfg.ExpiredCleanup, time.Now(), true)
		if err != nil {
			return err
		}
		pr.idx, pr.refPrint = x, fp
		pr.applyEpochs()
		pr.m.restores.Inc()
		pr.m.restoreTime.Set(time.Since(start).Seconds())
		pr.p.Logger.Info("restored the aggregate index from the store", "clients", x.Clients(), "keys", x.Keys(), "torn", x.Torn(), "took", time.Since(start).Round(time.Millisecond))
		return nil
	}, pr.writeAggregates)
}

// indexBatch folds a stored batch into the index and writes the cells it changed.
func (pr *Projector) indexBatch(ctx context.Context, hasRef bool, pending []kafkago.Message, recs []fold.Record) error {
	if pr.idx == nil {
		return nil
	}
	if hasRef {
		if err := pr.reloadRef(ctx, ""); err != nil {
			return err
		}
	}
	j := 0
	for _, m := range pending {
		if m.Topic == pr.cfg.RefTopic && pr.cfg.RefTopic != "" {
			continue
		}
		p := int32(m.Partition)
		if pr.idx.NeedsRestore(p, m.Offset) {
			pr.p.Logger.Info("records of a partition were folded elsewhere; restoring the index", "partition", p, "offset", m.Offset)
			// The store holds this batch already: the restored index includes it.
			if err := pr.restore(ctx); err != nil {
				return err
			}
		}
		if j < len(recs) && recs[j].Partition == m.Partition && recs[j].Offset == m.Offset {
			pr.idx.Fold(p, m.Offset, recs[j].Report)
			j++
		} else {
			pr.idx.Seen(p, m.Offset) // dead-lettered
		}
	}
	pr.idx.End()
	if err := pr.writeAggregates(ctx); err != nil {
		return err
	}
	return pr.claimReady(ctx)
}

// pollRefIfDue polls reference data when *next has passed, and sets the next time.
func (pr *Projector) pollRefIfDue(ctx context.Context, next *time.Time) error {
	if pr.idx == nil || time.Now().Before(*next) {
		return nil
	}
	if err := pr.pollRef(ctx); err != nil {
		return err
	}
	*next = time.Now().Add(pr.cfg.RefPoll)
	return nil
}

// pollRef looks for reference data imported by another process, and lets expiry advance.
func (pr *Projector) pollRef(ctx context.Context) error {
	var fp string
	if err := pr.retry(ctx, "read reference data", pr.m.storeErrors, func() (err error) {
		fp, err = refFingerprint(ctx, pr.p.Reader, pr.cfg.Database)
		return err
	}, nil); err != nil {
		return err
	}
	if fp != pr.refPrint {
		return pr.reloadRef(ctx, fp)
	}
	if pr.idx.Tick(time.Now()) {
		return pr.writeAggregates(ctx)
	}
	return nil
}

// reloadRef gives the index the store's reference data (fingerprint fp, or read now).
func (pr *Projector) reloadRef(ctx context.Context, fp string) error {
	return pr.retry(ctx, "read reference data", pr.m.storeErrors, func() error {
		if fp == "" {
			p, err := refFingerprint(ctx, pr.p.Reader, pr.cfg.Database)
			if err != nil {
				return err
			}
			fp = p
		}
		ref, err := LoadRef(ctx, pr.p.Reader, pr.cfg.Database)
		if err != nil {
			return err
		}
		if pr.idx.SetRef(ref, time.Now()) {
			pr.p.Logger.Info("reference data changed; recomputed the aggregates")
		}
		pr.refPrint = fp
		return nil
	}, pr.writeAggregates)
}

// writeAggregates inserts the cells that changed in the partitions this process claimed,
// retrying until the store acknowledges; those of other partitions are held back (their
// owner writes them).
func (pr *Projector) writeAggregates(ctx context.Context) error {
	pending := pr.idx.Pending()
	rows := pr.idx.ChangedFor(pr.cfg.Database, "", func(p int32) bool { _, ok := pr.epochs[p]; return ok })
	pr.m.idxClients.Set(float64(pr.idx.Clients()))
	if pr.p.Logger.Enabled(ctx, slog.LevelDebug) && len(pending) > 0 {
		var wrote, held []string
		still := pr.idx.Pending()
		for _, p := range pending {
			s := fmt.Sprintf("%d@%d", p, pr.idx.Next(p)-1)
			if slices.Contains(still, p) {
				held = append(held, s)
			} else {
				wrote = append(wrote, s)
			}
		}
		n := 0
		for _, r := range rows {
			n += r.Len()
		}
		pr.p.Logger.Debug("aggregate cells", "wrote", wrote, "rows", n, "held", held, "torn", pr.idx.Torn())
	}
	for _, r := range rows {
		if err := pr.retry(ctx, "insert aggregates", pr.m.storeErrors, func() error { return pr.p.Store.Insert(ctx, r) }, nil); err != nil {
			return err
		}
		pr.m.aggRows.Add(float64(r.Len()))
	}
	return nil
}

// retry runs op until it succeeds (backing off while the store is unavailable) or ctx ends,
// then runs then (if any).
func (pr *Projector) retry(ctx context.Context, what string, failures prometheus.Counter, op func() error, then func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			break
		}
		if p, ok := err.(permanent); ok {
			return p.error
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures.Inc()
		pr.p.Logger.Warn("cannot "+what+"; retrying", "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, pr.cfg.RetryMax)
	}
	if then != nil {
		return then(ctx)
	}
	return nil
}

// permanent is an error retry does not retry.
type permanent struct{ error }
