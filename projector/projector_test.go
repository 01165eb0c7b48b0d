package projector

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statepipe/statepipe/schema"
)

// The projector loop with a fake consumer group, store and producers: no Kafka, no store
// (Reader nil: aggregates off; ownership_test.go covers them on chDB).

const testTopic = "state.P01"

// loop is a projector running on fakes.
type loop struct {
	pr     *Projector
	j      *journal
	cons   *fakeConsumer
	store  *fakeStore
	dlq    *fakeProducer
	resync *fakeProducer
	cancel context.CancelFunc
	done   chan error
}

// startLoop runs a projector over gens; tune changes the fakes, its config and params first.
func startLoop(t *testing.T, tune func(*loop, *Config, *Params), gens ...*fakeGeneration) *loop {
	t.Helper()
	j := gens[0].j
	l := &loop{j: j, cons: &fakeConsumer{gens: gens}, store: &fakeStore{j: j},
		dlq: &fakeProducer{name: "dlq", j: j}, resync: &fakeProducer{name: "resync", j: j}, done: make(chan error, 1)}
	cfg := DefaultConfig()
	cfg.Database, cfg.Topic, cfg.RefTopic = "db", testTopic, "ref.P01"
	cfg.BatchWait, cfg.RetryMax = 20*time.Millisecond, 10*time.Millisecond
	p := Params{Consumer: l.cons, Store: l.store, DeadLetters: l.dlq, Resync: l.resync, Logger: quiet()}
	if tune != nil {
		tune(l, &cfg, &p)
	}
	pr, err := New(cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	l.pr = pr
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() { l.done <- pr.Run(ctx) }()
	t.Cleanup(func() { l.stop(t) })
	return l
}

// stop cancels the projector and returns what Run returned.
func (l *loop) stop(t *testing.T) error {
	t.Helper()
	l.cancel()
	select {
	case err, ok := <-l.done:
		if ok {
			close(l.done)
			if err != nil {
				t.Errorf("Run returned %v after its context was cancelled, want nil", err)
			}
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context being cancelled")
		return nil
	}
}

func committed(g *fakeGeneration, n int) func() string {
	return func() string {
		if got := len(g.offsets()); got < n {
			return "committed " + strings.Repeat("|", got) + ", want more"
		}
		return ""
	}
}

// A batch is inserted, raw log first, and committed only after every table was stored.
func TestLoopInsertsThenCommits(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0, 1)
	g.recs <- reportRecord(t, testTopic, 0, 10, "pc-a", true, 1, 2)
	g.recs <- reportRecord(t, testTopic, 1, 20, "pc-b", true, 1)
	l := startLoop(t, nil, g)
	eventually(t, committed(g, 2))
	if got := g.offsets(); !reflect.DeepEqual(got, []int64{10, 20}) {
		t.Errorf("committed offsets %v, want [10 20]", got)
	}
	entries := j.all()
	commit, raw, offsets := slices.Index(entries, "commit 2"), slices.Index(entries, "insert db.raw_reports"), slices.Index(entries, "insert db.offsets")
	if raw < 0 || offsets < raw || commit != offsets+1 || commit != len(entries)-1 {
		t.Fatalf("journal %q: want the raw log inserted before the other tables, the offsets last, then the commit", entries)
	}
	if n := l.store.count("db.raw_reports"); n != 2 {
		t.Errorf("%d raw reports inserted, want the 2 records'", n)
	}
	wantCount(t, "records_total", l.pr.m.records, 2)
	wantCount(t, "messages_total", l.pr.m.folded, 3)
}

// A batch flushes at BatchMessages without waiting for BatchWait.
func TestLoopFlushesAFullBatchAtOnce(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	for i := int64(0); i < 4; i++ {
		g.recs <- reportRecord(t, testTopic, 0, i, "pc-a", false, uint64(i+1))
	}
	startLoop(t, func(_ *loop, c *Config, _ *Params) { c.BatchMessages, c.BatchWait = 2, time.Hour }, g)
	eventually(t, committed(g, 4))
	if got := slices.Index(j.all(), "commit 2"); got < 0 {
		t.Errorf("journal %q: want batches of 2", j.all())
	}
}

// Records that cannot be folded go to the dead-letter topic with their reason and source,
// are counted, and are committed with the batch; the others fold.
func TestLoopDeadLettersWhatCannotBeFolded(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	good := reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	otherKey := reportRecord(t, testTopic, 0, 1, "pc-b", true, 1)
	otherKey.Key = []byte("pc-c")
	badHeader := reportRecord(t, testTopic, 0, 3, "pc-d", true, 1)
	badHeader.Headers = []Header{{Key: schema.HeaderAccepted, Value: []byte("soon")}}
	var b bytes.Buffer // pc-a's serial 1 again, for another update
	if err := schema.EncodeReport(&b, &schema.Report{V: 1, Client: "pc-a", Site: "P01", Messages: []schema.StateMessage{
		{Serial: 1, Time: 1764100000000, TopicType: schema.TopicUpdateCompliance, TopicID: "KB-OTHER", State: 2}}}); err != nil {
		t.Fatal(err)
	}
	conflict := Record{Topic: testTopic, Partition: 0, Offset: 4, Key: []byte("pc-a"), Value: b.Bytes()}
	for _, r := range []Record{good, otherKey, {Topic: testTopic, Partition: 0, Offset: 2, Key: []byte("pc-x"), Value: []byte{0xc1}}, badHeader, conflict} {
		g.recs <- r
	}
	l := startLoop(t, nil, g)
	eventually(t, committed(g, 5))
	want := map[string]string{"1": reasonInvalid, "2": reasonUndecodable, "3": reasonUnvouched, "4": reasonSerialConflict}
	dl := l.dlq.produced()
	if len(dl) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(dl), len(want))
	}
	for _, r := range dl {
		src := string(r.header(headerDLQSource))
		off := src[strings.LastIndex(src, "/")+1:]
		if reason := string(r.header(headerDLQReason)); !strings.HasPrefix(reason, want[off]+": ") || !strings.HasPrefix(src, testTopic+"/0/") {
			t.Errorf("dead letter from %q says %q, want reason %q", src, reason, want[off])
		}
	}
	for reason, n := range map[string]float64{reasonInvalid: 1, reasonUndecodable: 1, reasonUnvouched: 1, reasonSerialConflict: 1} {
		wantCount(t, "dead_letters_total "+reason, l.pr.m.deadLetters.WithLabelValues(reason), n)
	}
	if n := l.store.count("db.raw_reports"); n != 1 {
		t.Errorf("%d raw reports inserted, want the good one", n)
	}
}

// Only what a site key vouched for folds.
func TestLoopFoldsOnlyVouchedRecords(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	j := &journal{}
	g := newGeneration(1, j, 0)
	vouched := reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	at := time.Now().UnixMilli()
	vouched.Headers = []Header{{Key: schema.HeaderAccepted, Value: schema.AcceptedHeader(at)},
		{Key: schema.HeaderVouch, Value: schema.Vouch(key, testTopic, vouched.Key, vouched.Value, at)}}
	g.recs <- vouched
	g.recs <- reportRecord(t, testTopic, 0, 1, "pc-b", true, 1)
	l := startLoop(t, func(_ *loop, _ *Config, p *Params) { p.Vouch = []ed25519.PublicKey{pub} }, g)
	eventually(t, committed(g, 2))
	wantCount(t, "unvouched dead letters", l.pr.m.deadLetters.WithLabelValues(reasonUnvouched), 1)
	if n := l.store.count("db.raw_reports"); n != 1 {
		t.Errorf("%d raw reports inserted, want the vouched one", n)
	}
}

// A store that fails is retried until it acknowledges; only then is the batch committed.
func TestLoopRetriesTheStore(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	l := startLoop(t, func(l *loop, _ *Config, _ *Params) { l.store.fail = 3 }, g)
	eventually(t, committed(g, 1))
	entries := j.all()
	if got := slices.Index(entries, "commit 1"); got < 0 || slices.Contains(entries[got:], "insert failed") {
		t.Errorf("journal %q: want three failed inserts, then the inserts, then the commit", entries)
	}
	wantCount(t, "store_errors_total", l.pr.m.storeErrors, 3)
}

// The dead-letter topic is retried until Kafka acknowledges; the failures are counted.
func TestLoopRetriesTheDeadLetterTopic(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.recs <- Record{Topic: testTopic, Offset: 0, Key: []byte("pc"), Value: []byte{0xc1}}
	l := startLoop(t, func(l *loop, _ *Config, _ *Params) { l.dlq.fail = 2 }, g)
	eventually(t, committed(g, 1))
	if n := len(l.dlq.produced()); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	wantCount(t, "kafka_errors_total{op=dead_letter}", l.pr.m.kafkaErrors.WithLabelValues(opDeadLetter), 2)
}

// When the generation ends, the unflushed batch is not committed (its records are
// redelivered), the generation is released, and the next one is folded.
func TestLoopLeavesAnEndedGenerationsBatchUncommitted(t *testing.T) {
	j := &journal{}
	g1, g2 := newGeneration(1, j, 0), newGeneration(2, j, 0)
	g1.recs <- reportRecord(t, testTopic, 0, 5, "pc-a", true, 1)
	l := startLoop(t, func(_ *loop, c *Config, _ *Params) { c.BatchWait = time.Hour }, g1, g2)
	eventually(t, func() string {
		g1.mu.Lock()
		defer g1.mu.Unlock()
		if g1.fetchesDone == 0 {
			return "the record was not fetched"
		}
		return ""
	})
	g1.end()
	select {
	case <-g1.released:
	case <-time.After(10 * time.Second):
		t.Fatal("the ended generation was not released")
	}
	if got := g1.offsets(); len(got) != 0 {
		t.Errorf("ended generation committed %v, want nothing", got)
	}
	g2.recs <- reportRecord(t, testTopic, 0, 5, "pc-a", true, 1) // redelivered
	g2.end()                                                     // flush is not reached: the batch waits an hour
	select {
	case <-g2.released:
	case <-time.After(10 * time.Second):
		t.Fatal("the second generation was not joined and released")
	}
	wantCount(t, "generations_total", l.pr.m.generations, 2)
}

// Shutting down in the middle of a batch returns nil and commits nothing.
func TestLoopStopsWithoutCommittingTheUnflushedBatch(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	l := startLoop(t, func(_ *loop, c *Config, _ *Params) { c.BatchWait = time.Hour }, g)
	eventually(t, func() string {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.fetchesDone == 0 {
			return "the record was not fetched"
		}
		return ""
	})
	if err := l.stop(t); err != nil {
		t.Fatal(err)
	}
	if got := g.offsets(); len(got) != 0 {
		t.Errorf("committed %v on shutdown, want nothing", got)
	}
}

// Failed joins and fetches are retried and counted; a failed commit is counted and the loop
// goes on (the next commit covers the offsets).
func TestLoopRetriesKafka(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.fetchErrs, g.commitErrs = 2, 1
	g.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	l := startLoop(t, nil, g)
	eventually(t, func() string {
		if counterValue(t, l.pr.m.kafkaErrors.WithLabelValues(opCommit)) != 1 {
			return "the failed commit was not counted"
		}
		return ""
	})
	g.recs <- reportRecord(t, testTopic, 0, 1, "pc-a", false, 2)
	eventually(t, committed(g, 1))
	if got := g.offsets(); !reflect.DeepEqual(got, []int64{1}) {
		t.Errorf("committed %v, want [1] (the first commit failed)", got)
	}
	wantCount(t, "kafka_errors_total{op=fetch}", l.pr.m.kafkaErrors.WithLabelValues(opFetch), 2)
}

func TestLoopRetriesTheJoin(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", true, 1)
	l := startLoop(t, func(l *loop, _ *Config, _ *Params) { l.cons.fail = 2 }, g)
	eventually(t, committed(g, 1))
	wantCount(t, "kafka_errors_total{op=join}", l.pr.m.kafkaErrors.WithLabelValues(opJoin), 2)
}

// A gap in a client's serials older than ResyncAfter is asked for on the resync topic, even
// when no records arrive; the client's full report answers it.
func TestLoopRequestsAndAnswersResyncs(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	g.recs <- reportRecord(t, testTopic, 0, 0, "pc-a", false, 1)
	g.recs <- reportRecord(t, testTopic, 0, 1, "pc-a", false, 3) // 2 is missing
	l := startLoop(t, func(_ *loop, c *Config, _ *Params) { c.ResyncAfter = 30 * time.Millisecond }, g)
	eventually(t, func() string {
		if len(l.resync.produced()) == 0 {
			return "no resync request"
		}
		return ""
	})
	req := l.resync.produced()[0]
	if string(req.Key) != "pc-a" || !strings.Contains(string(req.Value), `"contiguous":1`) {
		t.Errorf("request %s = %s, want pc-a's, contiguous up to 1", req.Key, req.Value)
	}
	g.recs <- reportRecord(t, testTopic, 0, 2, "pc-a", true, 4, 5)
	eventually(t, func() string {
		if recs := l.resync.produced(); len(recs) < 2 || recs[1].Value != nil || string(recs[1].Key) != "pc-a" {
			return "the full report did not answer the request"
		}
		return ""
	})
	for reason, n := range map[string]float64{resyncGap: 1, resyncAnswered: 1} {
		wantCount(t, "resync_requests_total "+reason, l.pr.m.resyncs.WithLabelValues(reason), n)
	}
}

// Every labelled counter exists, at 0, before its first event.
func TestMetricsExistBeforeTheirFirstEvent(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Database, cfg.Topic = "db", testTopic
	if _, err := New(cfg, Params{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string][]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				series[mf.GetName()] = append(series[mf.GetName()], l.GetValue())
			}
		}
	}
	for name, want := range map[string][]string{
		"statepipe_projector_dead_letters_total":    {reasonInvalid, reasonSerialConflict, reasonUndecodable, reasonUnvouched},
		"statepipe_projector_resync_requests_total": {resyncAnswered, resyncGap},
		"statepipe_projector_kafka_errors_total":    {opAlive, opCommit, opDeadLetter, opFetch, opJoin, opLag, opResync},
	} {
		got := series[name]
		slices.Sort(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s has series %v, want %v", name, got, want)
		}
	}
}

// The lag is labelled by topic and partition.
func TestLoopReportsLagByTopic(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	l := startLoop(t, func(_ *loop, c *Config, p *Params) {
		c.LagEvery = 10 * time.Millisecond
		p.Lag = func(context.Context) (map[string]map[int]int64, error) {
			return map[string]map[int]int64{testTopic: {0: 7, 1: 0}, "ref.P01": {0: 2}}, nil
		}
	}, g)
	eventually(t, func() string {
		var m = l.pr.m.lag
		for _, c := range []struct {
			topic, partition string
			want             float64
		}{{testTopic, "0", 7}, {testTopic, "1", 0}, {"ref.P01", "0", 2}} {
			if got := gaugeValue(t, m.WithLabelValues(c.topic, c.partition)); got != c.want {
				return "lag of " + c.topic + "/" + c.partition + " not reported"
			}
		}
		return ""
	})
}

// DefaultConfig with the site's names is a valid config, and the flags default to it.
func TestDefaultConfigIsTheFlagsDefault(t *testing.T) {
	d := DefaultConfig()
	if err := d.Validate(); err == nil {
		t.Error("a config without database and topic validated")
	}
	d.Database, d.Topic = "db", testTopic
	if _, err := New(d, Params{}); err != nil {
		t.Errorf("New(DefaultConfig()) with the site's names: %v", err)
	}
	var flagged Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	flagged.RegisterFlags("projector.", fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	flagged.Database, flagged.Topic, flagged.ExpiredCleanup = "db", testTopic, d.ExpiredCleanup
	if !reflect.DeepEqual(flagged, d) {
		t.Errorf("flag defaults %+v differ from DefaultConfig %+v", flagged, d)
	}
}

// The read-ahead checks records on several workers, which finish out of order (reports of
// 1 and of 400 messages): the loop still folds and commits them in fetch order.
func TestLoopFoldsInFetchOrderAfterParallelChecks(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	const n = 3 * readAheadRecords
	l := startLoop(t, func(_ *loop, c *Config, _ *Params) { c.BatchMessages = 500 }, g)
	go func() {
		for i := range n {
			serials := []uint64{uint64(i + 1)}
			if i%3 == 0 {
				serials = nil
				for s := range 400 {
					serials = append(serials, uint64(1000*(i+1)+s))
				}
			}
			g.recs <- reportRecord(t, testTopic, 0, int64(i), "pc-"+strconv.Itoa(i), true, serials...)
		}
	}()
	eventually(t, committed(g, n))
	got := g.offsets()
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("record %d committed as offset %d: not in fetch order (%v…)", i, o, got[max(0, i-3):i+1])
		}
	}
	wantCount(t, "records_total", l.pr.m.records, n)
}

// The read-ahead holds no more than readAheadBytes of records fetched and not taken: with
// records of 40 % of it, two are held and the third waits, however many the broker has; each
// record the loop takes lets one more be fetched.
func TestReadAheadIsBoundedByBytes(t *testing.T) {
	j := &journal{}
	g := newGeneration(1, j, 0)
	cfg := DefaultConfig()
	cfg.Database, cfg.Topic = "db", testTopic
	pr, err := New(cfg, Params{Consumer: &fakeConsumer{gens: []*fakeGeneration{g}}, Store: &fakeStore{j: j},
		DeadLetters: &fakeProducer{name: "dlq", j: j}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, readAheadBytes*4/10)
	for i := range 10 {
		g.recs <- Record{Topic: testTopic, Offset: int64(i), Key: []byte("pc-1"), Value: big}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ra := pr.startReadAhead(ctx, g)
	defer ra.stop()
	fetched := func() int {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.fetchesDone
	}
	settle := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for fetched() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // room to fetch more than it should
		if got := fetched(); got != want {
			t.Fatalf("%d records fetched, want %d (two held, the third waiting for room)", got, want)
		}
	}
	settle(3)
	if _, err := ra.next(ctx, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	settle(4)
}
