package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/statepipe/statepipe/schema"
)

// Ownership of the aggregate cells. Only the member of the consumer group a partition of the
// state topic is assigned to writes that partition's cells. When a generation of the group
// gives this process partitions it did not hold in the previous one (at start, after a
// rebalance), it claims them (own, claim): it restores the index from the store — the store is
// always at least as new as the committed offsets, and folding is idempotent, so re-folding
// what the store already holds changes nothing —, writes every cell of those partitions under
// a new epoch, asks the coordinator whether it still holds the generation, and records the
// epoch in agg_fences. Readers count only the cells of a partition's greatest epoch, so a
// member that lost the partition and still writes (one evicted while busy) is never counted,
// whatever the order in which writes land. A partition taken over while torn (indexing.go) is
// claimed once the index has folded past the batch that tore it.

// ownership is a member's partition bookkeeping: the generation it works in, the partitions of
// the state topic it claimed (with the epoch their cells are written under), and those it owns
// but has not claimed yet. It does no I/O; the Projector's methods below do.
type ownership struct {
	gen       int32           // the generation's id (0: none yet)
	epochs    map[int32]int64 // claimed partitions and their epochs
	unclaimed map[int32]bool  // owned, not claimed yet (torn when taken over: claimReady)
}

func newOwnership() ownership {
	return ownership{epochs: map[int32]int64{}, unclaimed: map[int32]bool{}}
}

// assign moves to generation gen, which assigned this member partitions, and returns the
// partitions to claim, sorted: those not claimed in the generation just before (all of them
// when a generation was missed: another member may have held them meanwhile). The epochs of
// partitions it no longer holds, or is to claim again, are dropped.
func (o *ownership) assign(gen int32, partitions []int) (gained []int32) {
	consecutive := o.gen != 0 && gen == o.gen+1 // no other generation in between
	owned := make(map[int32]bool, len(partitions))
	for _, p := range partitions {
		owned[int32(p)] = true
		if _, claimed := o.epochs[int32(p)]; !claimed || !consecutive {
			gained = append(gained, int32(p))
		}
	}
	slices.Sort(gained)
	for p := range o.epochs {
		if !owned[p] || !consecutive || slices.Contains(gained, p) {
			delete(o.epochs, p)
		}
	}
	o.gen = gen
	return gained
}

// await replaces the partitions waiting to be claimed.
func (o *ownership) await(partitions []int32) {
	clear(o.unclaimed)
	for _, p := range partitions {
		o.unclaimed[p] = true
	}
}

// ready returns the partitions waiting to be claimed that are not torn, sorted.
func (o *ownership) ready(torn []int32) []int32 {
	var ready []int32
	for p := range o.unclaimed {
		if !slices.Contains(torn, p) {
			ready = append(ready, p)
		}
	}
	slices.Sort(ready)
	return ready
}

// owns reports whether this member claimed p: only then does it write p's cells.
func (o *ownership) owns(p int32) bool {
	_, ok := o.epochs[p]
	return ok
}

// nextEpoch is the epoch a claim in generation gen writes under, above greatest, the greatest
// recorded for the partition: the claim count in the high 32 bits, the generation in the low.
func nextEpoch(greatest uint64, gen int32) uint64 {
	return ((greatest>>32)+1)<<32 | uint64(uint32(gen))
}

// own takes the partitions generation gen assigned to this member: those it did not hold in
// the generation just before are restored and claimed; the others' cells are held back.
func (pr *Projector) own(ctx context.Context, gen Generation) error {
	partitions := gen.Partitions(pr.cfg.Topic)
	gained := pr.owner.assign(gen.ID(), partitions)
	pr.m.owned.Set(float64(len(partitions)))
	pr.p.Logger.Info("joined a generation of the consumer group", "generation", gen.ID(), "member", gen.Member(),
		"partitions", len(partitions), "taken_over", gained)
	if pr.p.Reader == nil {
		return nil
	}
	if pr.idx != nil && len(gained) == 0 {
		pr.owner.await(nil)
		pr.applyEpochs()
		return nil
	}
	if err := pr.restore(ctx); err != nil {
		return err
	}
	pr.owner.await(gained)
	return pr.claimReady(ctx)
}

// claimReady claims the partitions taken over that are not torn. A partition is torn when
// the restore found a batch begun beyond what its tables hold: one its previous owner was
// still inserting (an evicted member) or abandoned half-way (stopped in the middle). Its
// records from the committed offset on are folded again and repair the view, but a whole
// rewrite must wait until the index has folded past that batch: until then its cells stay
// those of the previous epoch, which readers keep counting.
func (pr *Projector) claimReady(ctx context.Context) error {
	if len(pr.owner.unclaimed) == 0 {
		return nil
	}
	torn := pr.idx.Torn()
	ready := pr.owner.ready(torn)
	if len(ready) == 0 {
		pr.p.Logger.Debug("partitions taken over wait to be folded past a batch begun before", "torn", torn)
		return nil
	}
	return pr.claim(ctx, pr.cur, ready)
}

// claim writes every cell of the gained partitions under a new epoch each, then — if this
// member still holds the generation — records the epochs in agg_fences, from which on
// readers count those cells (ddl/0009).
func (pr *Projector) claim(ctx context.Context, gen Generation, gained []int32) (err error) {
	defer func() {
		if err != nil { // not claimed: hold the cells back (a later generation claims again)
			for _, p := range gained {
				delete(pr.owner.epochs, p)
				pr.idx.SetEpoch(p, -1)
			}
		}
	}()
	greatest := map[int32]uint64{}
	if err := pr.retry.do(ctx, "read the partitions' epochs", pr.m.storeErrors, func() error {
		return pr.p.Reader.Each(ctx, "SELECT partition, max(epoch) FROM "+pr.cfg.Database+".agg_fences GROUP BY partition", func(r []any) error {
			var p int32
			var epoch uint64
			if err := schema.Scan(r, &p, &epoch); err != nil {
				return err
			}
			greatest[p] = epoch
			return nil
		})
	}); err != nil {
		return err
	}
	fences := NewFenceRows(pr.cfg.Database)
	for _, p := range gained {
		epoch := nextEpoch(greatest[p], gen.ID())
		pr.idx.Rewrite(p, int64(epoch))
		pr.owner.epochs[p] = int64(epoch) // its cells are written below, under the new epoch
		fences.Add(p, epoch, gen.ID(), gen.Member())
	}
	if err := pr.writeAggregates(ctx); err != nil {
		return err
	}
	// The check that makes a late claim harmless: a member whose generation ended may not
	// record an epoch (one that already checked and records late read the same counter as
	// the next owner, and the next owner's generation is greater).
	if err := pr.retry.do(ctx, "ask the group coordinator whether this member still holds its partitions", pr.m.kafkaErrors.WithLabelValues(opAlive), func() error {
		err := gen.Alive(ctx)
		if errors.Is(err, ErrGenerationEnded) {
			return permanent{err}
		}
		return err
	}); err != nil {
		return err
	}
	if err := pr.retry.do(ctx, "record the partitions' epochs", pr.m.storeErrors, func() error {
		return pr.p.Store.Insert(ctx, fences)
	}); err != nil {
		return err
	}
	for _, p := range gained {
		delete(pr.owner.unclaimed, p)
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
		conds[i] = fmt.Sprintf("(partition = %d AND epoch < %d)", p, uint64(pr.owner.epochs[p]))
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
		if e, ok := pr.owner.epochs[p]; ok {
			pr.idx.SetEpoch(p, e)
		} else {
			pr.idx.SetEpoch(p, -1)
		}
	}
}
