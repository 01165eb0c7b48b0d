package projector

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/projector/index"
)

// The in-memory index (package index) turns folding into aggregate cells. Its life cycle in
// the projector:
//
//   - Ownership (ownership.go). Only the member of the consumer group a partition of the
//     state topic is assigned to writes that partition's cells, under an epoch it claimed.
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

// restore replaces the index with one restored from the store, retrying until the store
// answers, and writes the cells that differ from what the store holds.
func (pr *Projector) restore(ctx context.Context) error {
	err := pr.retry.do(ctx, "restore the index", pr.m.storeErrors, func() error {
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
	})
	if err != nil {
		return err
	}
	return pr.writeAggregates(ctx)
}

// indexBatch folds a stored batch into the index and writes the cells it changed.
func (pr *Projector) indexBatch(ctx context.Context, hasRef bool, pending []Record, recs []fold.Record) error {
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
		if pr.isRef(&m) {
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
	if err := pr.retry.do(ctx, "read reference data", pr.m.storeErrors, func() (err error) {
		fp, err = refFingerprint(ctx, pr.p.Reader, pr.cfg.Database)
		return err
	}); err != nil {
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
	err := pr.retry.do(ctx, "read reference data", pr.m.storeErrors, func() error {
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
	})
	if err != nil {
		return err
	}
	return pr.writeAggregates(ctx)
}

// writeAggregates inserts the cells that changed in the partitions this process claimed,
// retrying until the store acknowledges; those of other partitions are held back (their
// owner writes them).
func (pr *Projector) writeAggregates(ctx context.Context) error {
	pending := pr.idx.Pending()
	rows := pr.idx.Changed(index.Target{DB: pr.cfg.Database, Allow: pr.owner.owns})
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
		if err := pr.retry.do(ctx, "insert aggregates", pr.m.storeErrors, func() error { return pr.p.Store.Insert(ctx, r) }); err != nil {
			return err
		}
		pr.m.aggRows.Add(float64(r.Len()))
	}
	return nil
}
