package main

// Several projector processes in one consumer group (issue 3: "a consumer-group rebalance
// yields exactly the same tables and reports"): a second member joins, reference data changes
// while both fold, the member leaves and joins again; at the end the aggregates must equal
// the report computed by scanning the live states.

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/projector"
	"github.com/statepipe/statepipe/projector/index"
	"github.com/statepipe/statepipe/replicator"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// startMember runs one more projector of s's group in this process, on the same store.
func startMember(t *testing.T, s *testSite, log *slog.Logger) (stop func()) {
	t.Helper()
	return startMemberOn(t, s, s.node.sites[0].store, log)
}

// startMemberOn is startMember writing through store.
func startMemberOn(t *testing.T, s *testSite, store siteStore, log *slog.Logger) (stop func()) {
	t.Helper()
	st := s.node.sites[0]
	group := st.cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + s.code
	}
	kc := st.cfg.Kafka
	topic := kafka.StateTopic(s.code)
	cfg := projectorDefaults()
	cfg.Database, cfg.Topic, cfg.RefTopic, cfg.BatchWait = database(s.code), topic, kafka.RefTopic(s.code), 50*time.Millisecond
	reader, err := kafka.NewGroupConsumer(kc, group, topic, kafka.RefTopic(s.code))
	if err != nil {
		t.Fatal(err)
	}
	dlq := kafka.NewProducer(kc, topic+".dlq")
	p, err := projector.New(cfg, projector.Params{Consumer: groupConsumer{reader}, Store: store, Reader: store, DeadLetters: projectorProducer{dlq},
		Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("member stopped with error: %v", err)
		}
		_ = reader.Close()
		_ = dlq.Close()
	}
}

// memberLog is quiet unless STATEPIPE_MULTI_MEMBER=debug (then every claim and cell write).
func memberLog(name string) *slog.Logger {
	if os.Getenv("STATEPIPE_MULTI_MEMBER") != "debug" {
		return quietLogger()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("member", name)
}

// gatedStore holds back inserts of aggregate cells while shut: a projector stuck in a write
// for longer than the group's rebalance timeout (a GC pause, a hung connection), which cannot
// be caused in chDB itself.
type gatedStore struct {
	siteStore
	shut    atomic.Bool
	open    chan struct{}
	blocked chan string // the table of each held insert
	landed  chan string // and once it went through
}

func (g *gatedStore) Insert(ctx context.Context, rows schema.Rows) error {
	if !strings.Contains(rows.Table(), ".agg_") || strings.HasSuffix(rows.Table(), ".agg_fences") || !g.shut.Load() {
		return g.siteStore.Insert(ctx, rows)
	}
	g.blocked <- rows.Table()
	select {
	case <-g.open:
	case <-ctx.Done(): // the member stops (the test failed before opening the gate)
		return ctx.Err()
	}
	err := g.siteStore.Insert(context.Background(), rows)
	g.landed <- rows.Table()
	return err
}

// currentOwners returns, per partition, the member whose epoch readers count.
func currentOwners(t *testing.T, s *testSite) map[int64]string {
	t.Helper()
	res, err := s.node.sites[0].store.Query(context.Background(),
		"SELECT partition, argMax(member, epoch) FROM "+database(s.code)+".agg_fences GROUP BY partition")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for _, r := range res.Rows {
		out[r[0].(int64)] = r[1].(string)
	}
	return out
}

// fleet is a set of clients pc-00… of a site, each reporting a random state of every catalog
// update U1…Un in each round; agreeing compares the aggregate compliance report with the one
// computed by scanning the live states, once every client has been folded.
type fleet struct {
	t       *testing.T
	s       *testSite
	n, upd  int
	full    bool
	rng     *rand.Rand
	clients map[int]interface {
		Report(context.Context, bool, ...schema.StateMessage) error
	}
}

// newFleet imports the catalog U1…U(updates) and returns n clients reporting full or delta.
func newFleet(t *testing.T, s *testSite, n, updates int, full bool, seed uint64) *fleet {
	for u := 1; u <= updates; u++ {
		s.importRef("catalog", fmt.Sprintf(`{"id":"U%d","title":"Update %d","first_synced":"2026-01-01T00:00:00Z"}`, u, u))
	}
	return &fleet{t: t, s: s, n: n, upd: updates, full: full, rng: rand.New(rand.NewPCG(seed, seed+1)),
		clients: map[int]interface {
			Report(context.Context, bool, ...schema.StateMessage) error
		}{}}
}

func (f *fleet) round() {
	for c := 0; c < f.n; c++ {
		if f.clients[c] == nil {
			f.clients[c] = f.s.client(fmt.Sprintf("pc-%02d", c))
		}
		var msgs []schema.StateMessage
		for u := 1; u <= f.upd; u++ {
			msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: fmt.Sprintf("U%d", u), State: int32(1 + f.rng.IntN(3))})
		}
		if err := f.clients[c].Report(context.Background(), f.full, msgs...); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fleet) agreeing() string {
	var agg, scan report.Compliance
	if code := f.s.get("/v1/reports/compliance", &agg); code != 200 {
		return fmt.Sprintf("compliance: %d", code)
	}
	if code := f.s.get("/v1/reports/compliance?source=scan", &scan); code != 200 {
		return fmt.Sprintf("compliance scan: %d", code)
	}
	if !reflect.DeepEqual(agg.Updates, scan.Updates) || agg.Computers != scan.Computers {
		return fmt.Sprintf("aggregates differ from the scan:\n agg  %+v %+v\n scan %+v %+v", agg.Updates, agg.Computers, scan.Updates, scan.Computers)
	}
	if len(scan.Updates) != f.upd || scan.Updates[0].Total != int64(len(f.clients)) {
		return fmt.Sprintf("not every client folded yet: %+v", scan.Updates)
	}
	return ""
}

// A member that is stuck in a write of aggregate cells while the group rebalances is evicted,
// and its partitions are claimed by the others under new epochs; when its write finally lands
// it must not change any count (ddl/0009).
func TestEvictedMembersLateWritesAreNotCounted(t *testing.T) {
	t.Parallel()
	logA, logB, logC := memberLog("A"), memberLog("B"), memberLog("C")
	s := startSite(t, siteOpts{log: logA})
	ctx := context.Background()
	f := newFleet(t, s, 32, 6, true, 3)
	round, agreeing := f.round, f.agreeing
	round()
	eventuallyWithin(t, 30*time.Second, agreeing)
	gate := &gatedStore{siteStore: s.node.sites[0].store, open: make(chan struct{}), blocked: make(chan string, 100), landed: make(chan string, 100)}
	stopB := startMemberOn(t, s, gate, logB)
	defer stopB()
	var b string // B's member id: the one not owning every partition before it joined
	before := currentOwners(t, s)
	eventuallyWithin(t, 30*time.Second, func() string {
		for p, m := range currentOwners(t, s) {
			if m != before[p] {
				b = m
				return ""
			}
		}
		return "the second member has not claimed partitions yet"
	})
	gate.shut.Store(true)
	// Until B is stuck in a cell write of a batch it folded.
	deadline := time.Now().Add(30 * time.Second)
	for stuck := false; !stuck; {
		round()
		select {
		case <-gate.blocked:
			stuck = true
		case <-time.After(time.Second):
			if time.Now().After(deadline) {
				t.Fatal("the second member never wrote aggregate cells")
			}
		}
	}
	// A third member joins: the group rebalances, B cannot rejoin in time and is evicted; the
	// others claim its partitions and fold more.
	stopC := startMember(t, s, logC)
	defer stopC()
	eventuallyWithin(t, 60*time.Second, func() string {
		for p, m := range currentOwners(t, s) {
			if m == b {
				res, _ := s.node.sites[0].store.Query(ctx, "SELECT * FROM "+database(s.code)+".agg_fences ORDER BY partition, epoch")
				return fmt.Sprintf("partition %d still counted under B's epoch; fences %v", p, res.Rows)
			}
		}
		return ""
	})
	round()
	eventuallyWithin(t, 30*time.Second, agreeing)
	// B's stale write lands now, after the partitions moved on.
	close(gate.open)
	select {
	case <-gate.landed:
	case <-time.After(30 * time.Second):
		t.Fatal("the held write never landed")
	}
	db := database(s.code)
	res, err := s.node.sites[0].store.Query(ctx, "SELECT count() FROM "+db+".agg_states WHERE epoch IN (SELECT epoch FROM "+db+".agg_fences WHERE member = "+report.Quote(b)+")")
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows[0][0].(int64) == 0 {
		t.Fatal("no cells under B's epochs: the test did not produce a late write")
	}
	if msg := agreeing(); msg != "" {
		t.Fatalf("after the evicted member's late write: %s", msg)
	}
}

// Several members fold one site while reference data changes and members leave and join;
// only a partition's owner writes its cells (ddl/0009). STATEPIPE_MULTI_MEMBER=debug logs
// every claim and cell write, and every stale cell at the end.
func TestAggregatesEqualScanWithSeveralProjectorMembers(t *testing.T) {
	t.Parallel()
	logA, logB := memberLog("A"), memberLog("B")
	s := startSite(t, siteOpts{log: logA})
	rng := rand.New(rand.NewPCG(11, 12))
	ctx := context.Background()
	var catalog []string
	for u := 1; u <= 10; u++ {
		catalog = append(catalog, fmt.Sprintf(`{"id":"U%d","title":"Update %d","first_synced":"2026-0%d-01T00:00:00Z"}`, u, u, 1+u%9))
	}
	s.importRef("catalog", catalog...)
	s.importRef("lists", `{"id":"L","name":"list","updates":["U1","U2","U3","U4","U5"]}`)
	var members []string
	for c := 0; c < 40; c += 2 {
		members = append(members, fmt.Sprintf("%q", fmt.Sprintf("pc-%02d", c)))
	}
	s.importRef("collections", `{"id":"C","name":"even","members":[`+strings.Join(members, ",")+`]}`)
	clients := make(map[int]interface {
		Report(context.Context, bool, ...schema.StateMessage) error
	})
	// A replicator's reader of the counted cells, read after every round through the
	// rebalances below: incrementally, it must end equal to a full read.
	cells := replicator.NewCellReader(s.node.sites[0].store, database(s.code))
	round := func() {
		defer func() {
			if _, err := cells.Read(ctx); err != nil {
				t.Fatal(err)
			}
		}()
		for c := 0; c < 40; c++ {
			cl, ok := clients[c]
			if !ok {
				cl = s.client(fmt.Sprintf("pc-%02d", c))
				clients[c] = cl
			}
			var msgs []schema.StateMessage
			for u := 1; u <= 10; u++ {
				if rng.IntN(3) > 0 {
					msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: fmt.Sprintf("U%d", u), State: int32(rng.IntN(4))})
				}
			}
			if rng.IntN(2) == 0 {
				msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicScan, TopicID: "wsus", State: 3, Time: time.Date(2026, time.Month(1+rng.IntN(10)), 15, 0, 0, 0, 0, time.UTC).UnixMilli()})
			}
			if len(msgs) == 0 {
				msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicHeartbeat})
			}
			if err := cl.Report(ctx, rng.IntN(4) == 0, msgs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	round()
	stopB := startMember(t, s, logB)
	time.Sleep(2 * time.Second) // let the group rebalance onto two members
	round()
	s.importRef("lists", `{"id":"L","name":"list","updates":["U1","U2","U3","U4","U5","U6"]}`)
	round()
	members = append(members, `"pc-01"`, `"pc-03"`)
	s.importRef("collections", `{"id":"C","name":"even and two","members":[`+strings.Join(members, ",")+`]}`)
	round()
	stopB() // its partitions move back
	round()
	stopB = startMember(t, s, logB)
	time.Sleep(2 * time.Second)
	round()
	s.importRef("catalog", `{"id":"U3","title":"Update 3","first_synced":"2026-08-01T00:00:00Z"}`)
	round()
	defer stopB()

	// Each claim deletes the cells of the partition's earlier epochs (a background mutation).
	db := database(s.code)
	eventuallyWithin(t, 30*time.Second, func() string {
		for _, tb := range []string{"agg_states", "agg_errors", "agg_lists", "agg_scans"} {
			res, err := s.node.sites[0].store.Query(ctx, "SELECT count() FROM "+db+"."+tb+
				" WHERE (partition, epoch) NOT IN (SELECT partition, epoch FROM "+db+".v_agg_fences)")
			if err != nil {
				return err.Error()
			}
			if n := res.Rows[0][0].(int64); n > 0 {
				return fmt.Sprintf("%s: %d rows of earlier epochs left", tb, n)
			}
		}
		return ""
	})
	eventuallyWithin(t, 60*time.Second, func() string {
		got, err := cells.Read(ctx)
		if err != nil {
			return err.Error()
		}
		want, err := replicator.ReadCells(ctx, s.node.sites[0].store, db)
		if err != nil {
			return err.Error()
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Sprintf("the incremental reader holds %d cells, a full read %d: %v", len(got), len(want), replicator.Changed(want, got))
		}
		return ""
	})
	for _, q := range []string{"?list=L", "?list=L&collection=C", "", "?collection=C"} {
		eventuallyWithin(t, 60*time.Second, func() string {
			var agg, scan report.Compliance
			if code := s.get("/v1/reports/compliance"+q, &agg); code != 200 {
				return fmt.Sprintf("%s: %d", q, code)
			}
			sep := "?"
			if q != "" {
				sep = "&"
			}
			if code := s.get("/v1/reports/compliance"+q+sep+"source=scan", &scan); code != 200 {
				return fmt.Sprintf("%s scan: %d", q, code)
			}
			if !reflect.DeepEqual(agg.Updates, scan.Updates) || agg.Computers != scan.Computers {
				if os.Getenv("STATEPIPE_MULTI_MEMBER") == "debug" {
					dumpStaleCells(t, s)
				}
				return fmt.Sprintf("compliance%s: aggregates differ from the scan:\n agg  %+v %+v\n scan %+v %+v", q, agg.Updates, agg.Computers, scan.Updates, scan.Computers)
			}
			return ""
		})
	}
}

// dumpStaleCells logs the stored aggregate rows that differ from a computation from the
// live state, per partition (debugging the multi-member bug).
func dumpStaleCells(t *testing.T, s *testSite) {
	st := s.node.sites[0].store
	db := database(s.code)
	x, err := projector.RestoreIndex(context.Background(), st, db, 7*24*time.Hour, time.Now(), false)
	if err != nil {
		t.Log(err)
		return
	}
	type val struct{ a, b int64 }
	fresh := map[string]val{}
	for _, rows := range x.Changed(index.Target{DB: db}) {
		for i := 0; i < rows.Len(); i++ {
			v := rows.Values(i)
			switch rows.Table() {
			case db + ".agg_states":
				fresh["s"+fmt.Sprint(v[0], v[1], v[2], v[3], v[4])] = val{v[5].(int64), v[6].(int64)}
			case db + ".agg_lists":
				fresh["l"+fmt.Sprint(v[0], v[1], v[2], v[3])] = val{v[4].(int64), 0}
			}
		}
	}
	stored := map[string]val{}
	versions := map[string]any{}
	for _, q := range []string{
		"SELECT 's', scope, topic_type, topic_id, state, partition, clients, scanned, version FROM " + db + ".agg_states FINAL",
		"SELECT 'l', scope, list, status, partition, clients, 0, version FROM " + db + ".agg_lists FINAL",
	} {
		res, err := st.Query(context.Background(), q)
		if err != nil {
			t.Log(err)
			return
		}
		for _, r := range res.Rows {
			n := len(r)
			k := r[0].(string) + fmt.Sprint(r[1:n-3]...)
			stored[k] = val{r[n-3].(int64), r[n-2].(int64)}
			versions[k] = r[n-1]
		}
	}
	for k, v := range stored {
		if fresh[k] != v {
			t.Logf("stale cell %s: stored %v (version %v), live state says %v", k, v, versions[k], fresh[k])
		}
	}
	// Every row ever written for the stale agg_states cells (before merges collapse them).
	res, err := st.Query(context.Background(), "SELECT f.scope, f.topic_id, f.state, f.partition, a.clients, a.scanned, a.version, a._part FROM "+db+
		".agg_states AS a INNER JOIN (SELECT scope, topic_id, state, partition FROM "+db+".agg_states FINAL WHERE topic_type = 500) AS f USING (scope, topic_id, state, partition) WHERE a.topic_type = 500 ORDER BY f.partition, f.topic_id, f.state, f.scope, a._part")
	if err == nil {
		for _, r := range res.Rows {
			k := "s" + fmt.Sprint(r[0], 500, r[1], r[2], r[3])
			if fresh[k] != stored[k] {
				t.Logf("  history %s: %v %v v%v %v", k, r[4], r[5], r[6], r[7])
			}
		}
	} else {
		t.Log(err)
	}
	for k, v := range fresh {
		if _, ok := stored[k]; !ok {
			t.Logf("missing cell %s: live state says %v", k, v)
		}
	}
	off, _ := st.Query(context.Background(), "SELECT partition, max(offset) FROM "+db+".offsets GROUP BY partition ORDER BY 1")
	t.Logf("offsets: %v", off.Rows)
}

// A partition taken over with a batch begun beyond what its tables hold (its previous owner
// stopped half-way through inserting it) is torn: the new owner must not rewrite its cells
// under a new epoch before it has folded past that batch — readers keep counting the previous
// epoch meanwhile — and must claim it once it has.
func TestTornPartitionIsClaimedOnceFoldedPast(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{log: memberLog("A")})
	ctx := context.Background()
	db := database(s.code)
	st := s.node.sites[0].store
	f := newFleet(t, s, 40, 4, false, 5)
	round, agreeing := f.round, f.agreeing
	round()
	eventuallyWithin(t, 30*time.Second, agreeing)
	a := currentOwners(t, s)[0]
	stopB := startMember(t, s, memberLog("B"))
	var p int64 = -1
	var b string
	eventuallyWithin(t, 30*time.Second, func() string {
		for q, m := range currentOwners(t, s) {
			if m != a {
				p, b = q, m
				return ""
			}
		}
		return "the second member has not claimed partitions yet"
	})
	round()
	eventuallyWithin(t, 30*time.Second, agreeing)
	group := s.node.sites[0].cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + s.code
	}
	lag := kafka.GroupLag(s.node.sites[0].cfg.Kafka, group, kafka.StateTopic(s.code))
	eventuallyWithin(t, 30*time.Second, func() string {
		l, err := lag(ctx)
		if err != nil {
			return err.Error()
		}
		for q, n := range l[kafka.StateTopic(s.code)] {
			if n > 0 {
				return fmt.Sprintf("partition %d: %d records not committed", q, n)
			}
		}
		return ""
	})
	// A batch of partition p is left begun beyond p's offsets, as if B had stopped half-way
	// through inserting it (B folds nothing more: every report is committed), and B stops.
	res, err := st.Query(ctx, fmt.Sprintf("SELECT max(offset) FROM %s.offsets WHERE partition = %d", db, p))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Exec(ctx, fmt.Sprintf("INSERT INTO %s.batches_begun VALUES (%d, %d)", db, p, res.Rows[0][0].(int64)+3)); err != nil {
		t.Fatal(err)
	}
	stopB()
	// A takes every partition over; p waits (still counted under B's epoch), the rest are A's.
	eventuallyWithin(t, 30*time.Second, func() string {
		owners := currentOwners(t, s)
		for q, m := range owners {
			if q != p && m != a {
				return fmt.Sprintf("partition %d not taken over yet", q)
			}
		}
		if owners[p] != b {
			return fmt.Sprintf("torn partition %d was claimed before it was folded past (owner %s)", p, owners[p])
		}
		return ""
	})
	if msg := agreeing(); msg != "" {
		t.Fatalf("while partition %d waits: %s", p, msg)
	}
	// Reports fold past the begun batch; then A claims p.
	eventuallyWithin(t, 60*time.Second, func() string {
		if currentOwners(t, s)[p] == a {
			return ""
		}
		round()
		return fmt.Sprintf("partition %d not claimed after folding past the begun batch", p)
	})
	eventuallyWithin(t, 30*time.Second, agreeing)
}
