package main

// End-to-end tests: reports posted over real HTTP → Kafka (the embedded kfake broker, or real
// Apache Kafka when KAFKA_BROKERS is set) → projector → chDB → reports and SQL. Counts are
// asserted exactly against an oracle computed from the posted history.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

var chdbDir string // the process's one chDB session lives here

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "statepipe-e2e-chdb-")
	if err != nil {
		panic(err)
	}
	chdbDir = dir
	if b := realKafka(); b != nil {
		fmt.Fprintf(os.Stderr, "end-to-end tests on real Kafka at %v\n", b)
	} else {
		fmt.Fprintln(os.Stderr, "end-to-end tests on the embedded broker (set KAFKA_BROKERS for a real one)")
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func realKafka() []string {
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	return nil
}

// requireChdb skips (or, under `make test`, fails) when libchdb.so is not installed.
func requireChdb(t *testing.T) {
	t.Helper()
	st, err := chdb.New(chdb.Config{Path: chdbDir})
	if errors.Is(err, chdb.ErrLibraryNotFound) {
		if os.Getenv("STATEPIPE_REQUIRE_CHDB") != "" {
			t.Fatalf("libchdb.so is required here: %v", err)
		}
		t.Skipf("embedded engine not installed, end-to-end test skipped: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
}

type testSite struct {
	t    *testing.T
	code string
	url  string
	data string // data directory (embedded broker, site key)
	node *node
	stop func()
}

type siteOpts struct {
	code  string // reuse a site (restart); empty picks a fresh one
	data  string // embedded Kafka data dir to reuse
	group string
	wrap  func(siteStore) siteStore
	tune  func(*runConfig)
	log   *slog.Logger // default quietLogger()
}

var siteSeq atomic.Int64

// startSite starts a whole site in-process on free ports.
func startSite(t *testing.T, o siteOpts) *testSite {
	t.Helper()
	requireChdb(t)
	code := o.code
	if code == "" {
		code = fmt.Sprintf("T%d%04d", siteSeq.Add(1), rand.IntN(10000))
	}
	data := o.data
	if data == "" {
		data = t.TempDir()
	}
	cfg := runConfig{Data: data, Listen: "127.0.0.1:0", KafkaListen: "127.0.0.1:0", Site: code, Group: o.group,
		Kafka: kafka.DefaultConfig(), Ingest: ingestDefaults(), Auth: authDefaults(ingest.AuthOptional), Projector: projectorDefaults()}
	cfg.Kafka.Brokers = realKafka()
	cfg.Kafka.Partitions = 4
	// The rule cases and reports tests use client clocks near the epoch: what they test is
	// folding, not the clock bounds (trust_e2e_test.go tests those).
	cfg.Auth.MaxMessageAge = 100 * 365 * 24 * time.Hour
	cfg.Projector.BatchWait = 50 * time.Millisecond
	// Imports wait for their fold (30 s by default): on a loaded 2-core machine running the
	// suite's sites in parallel, a fold has taken longer, and an import answered 202 failed a
	// test that was not about time. No test waits for this bound to pass.
	cfg.Ingest.FoldWait = 2 * time.Minute
	cfg.Store.ChdbPath = chdbDir
	if o.tune != nil {
		o.tune(&cfg)
	}
	log := o.log
	if log == nil {
		log = quietLogger()
	}
	n, stop := runTestNode(t, cfg, o.wrap, log)
	return &testSite{t: t, code: code, url: n.url(), data: data, node: n, stop: stop}
}

// runTestNode starts `statepipe run` with cfg in the test process, waits until it is healthy,
// and returns it with its stop (also run when the test ends).
func runTestNode(t *testing.T, cfg runConfig, wrap func(siteStore) siteStore, log *slog.Logger) (*node, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	n, err := startRun(ctx, cfg, wrap, log)
	if err != nil {
		cancel()
		t.Fatalf("cannot start: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- n.run(ctx) }()
	waitHealthy(t, n.url())
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with error: %v", err)
		}
	}
	t.Cleanup(stop)
	return n, stop
}

// waitHealthy waits until url's /healthz answers 200: the node serves, and its ingest has read
// the identity log (before that it answers signed reports and enrolments 503).
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	// A site serving HTTPS has a test certificate: only whether it answers matters here.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(url + "/healthz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz did not answer 200 within 30 s (last: %v)", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// siteKey returns the site key (statepipe run keeps it in the data directory).
func (s *testSite) siteKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	key, err := ingest.LoadOrCreateSiteKey(filepath.Join(s.data, "site-"+s.code+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// produceVouched produces a record to the site's state topic (or another, with topic) vouched
// for with the site key, as an ingest node of the site would — one without this node's memory
// of serials, say.
func (s *testSite) produceVouched(t *testing.T, client string, value []byte) {
	t.Helper()
	topic := kafka.StateTopic(s.code)
	w := kafka.NewProducer(s.node.sites[0].cfg.Kafka, topic)
	defer w.Close()
	at := time.Now().UnixMilli()
	if err := w.Produce(context.Background(), kafka.Record{Key: []byte(client), Value: value,
		Headers: []kafka.Header{{Key: schema.HeaderAccepted, Value: schema.AcceptedHeader(at)},
			{Key: schema.HeaderVouch, Value: schema.Vouch(s.siteKey(t), topic, []byte(client), value, at)}}}); err != nil {
		t.Fatal(err)
	}
}

// waitFolded returns once the site's projector committed past every report produced so far:
// it commits only after the raw log, the derived tables and the aggregates are stored.
func (s *testSite) waitFolded() {
	s.t.Helper()
	cfg := s.node.sites[0].cfg
	group := cfg.ProjectorGroup
	if group == "" {
		group = "statepipe-projector-" + s.code
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.GroupCaughtUp(cfg.Kafka, group, kafka.StateTopic(s.code))(ctx); err != nil {
		s.t.Fatalf("the projector did not fold what was produced: %v", err)
	}
}

func (s *testSite) client(id string) *client.Client {
	c, err := client.New(client.Config{URL: s.url, Site: s.code, ClientID: id})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *testSite) compliance(updates ...string) *report.Compliance {
	s.t.Helper()
	u := s.url + "/v1/reports/compliance"
	if len(updates) > 0 {
		u += "?updates=" + strings.Join(updates, ",")
	}
	resp, err := http.Get(u)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var c report.Compliance
	if resp.StatusCode == 404 && len(updates) > 0 {
		return &c // no client reported the updates yet (an update id the site does not know is 404)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("compliance: %s %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		s.t.Fatal(err)
	}
	return &c
}

func (s *testSite) sql(q string) (*schema.Result, int) {
	s.t.Helper()
	body, _ := json.Marshal(report.SQLRequest{Query: q})
	resp, err := http.Post(s.url+"/v1/sql", "application/json", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var res schema.Result
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &res); err != nil {
			s.t.Fatal(err)
		}
	}
	return &res, resp.StatusCode
}

// oracle is the expected current update-compliance state per (client, update).
type oracle map[[2]string]struct {
	serial uint64
	state  int32
}

func (o oracle) add(r *schema.Report) {
	for _, m := range r.Messages {
		if m.TopicType != schema.TopicUpdateCompliance {
			continue
		}
		k := [2]string{r.Client, m.TopicID}
		if cur, ok := o[k]; !ok || cur.serial < m.Serial {
			o[k] = struct {
				serial uint64
				state  int32
			}{m.Serial, m.State}
		}
	}
}

// want returns expected per-update [unknown, not required, required, installed] given the
// scope (every client with any state).
func (o oracle) want() map[string][4]int64 {
	clients := map[string]bool{}
	for k := range o {
		clients[k[0]] = true
	}
	per := map[string][4]int64{}
	for k, v := range o {
		c := per[k[1]]
		c[v.state]++
		per[k[1]] = c
	}
	for u, c := range per {
		c[0] += int64(len(clients)) - c[0] - c[1] - c[2] - c[3]
		per[u] = c
	}
	return per
}

// waitFor polls the compliance report until it equals the oracle.
func (s *testSite) waitFor(o oracle) *report.Compliance {
	s.t.Helper()
	want := o.want()
	deadline := time.Now().Add(60 * time.Second)
	var got *report.Compliance
	for time.Now().Before(deadline) {
		got = s.compliance()
		if matches(got, want) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("compliance never matched the oracle\n got  %+v\n want %v", got.Updates, want)
	return nil
}

func matches(got *report.Compliance, want map[string][4]int64) bool {
	if len(got.Updates) != len(want) {
		return false
	}
	for _, u := range got.Updates {
		w := want[u.UpdateID]
		if [4]int64{u.Unknown, u.NotRequired, u.Required, u.Installed} != w {
			return false
		}
	}
	return true
}

func msg(serial uint64, update string, state int32) schema.StateMessage {
	return schema.StateMessage{Serial: serial, Time: 1764100000000 + int64(serial), TopicType: schema.TopicUpdateCompliance, TopicID: update, State: state}
}

func TestEndToEndExactUnderDuplicatesAndReordering(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	o := oracle{}
	var history []*schema.Report
	// 40 clients × 12 updates, full first report, then deltas with later serials.
	for c := 0; c < 40; c++ {
		id := fmt.Sprintf("client-%03d", c)
		full := &schema.Report{V: 1, Client: id, Site: s.code, FullTypes: []schema.TopicType{500}}
		for u := 0; u < 12; u++ {
			full.Messages = append(full.Messages, msg(uint64(u+1), fmt.Sprintf("KB%03d", u), int32((c+u)%4)))
		}
		delta := &schema.Report{V: 1, Client: id, Site: s.code, Messages: []schema.StateMessage{
			msg(100, fmt.Sprintf("KB%03d", c%12), 3), msg(101, "KB011", int32(c%3)),
		}}
		history = append(history, full, delta)
	}
	// Post out of order (a delta may land before its full report) and with duplicates.
	rand.Shuffle(len(history), func(i, j int) { history[i], history[j] = history[j], history[i] })
	for i, r := range history {
		o.add(r)
		cl := s.client(r.Client)
		if _, err := cl.Send(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // a client retry: the same report again
			if _, err := cl.Send(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	// JSON path: one more client, posted as people and curl would.
	js := `{"v":1,"client":"json-client","site":"` + s.code + `","messages":[{"serial":1,"time":1,"topic_type":500,"topic_id":"KB000","state":3,"error":0}]}`
	resp, err := http.Post(s.url+"/v1/reports", "application/json", strings.NewReader(js))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("json post: %v %v", err, resp)
	}
	resp.Body.Close()
	o.add(&schema.Report{Client: "json-client", Messages: []schema.StateMessage{msg(1, "KB000", 3)}})

	got := s.waitFor(o)
	if got.Computers.Total != 41 {
		t.Errorf("computers total = %d, want 41", got.Computers.Total)
	}
	// Per-computer compliance against the oracle.
	var compliant, non int64
	perClient := map[string][]int32{}
	for k, v := range o {
		perClient[k[0]] = append(perClient[k[0]], v.state)
	}
	for _, states := range perClient {
		req, ok := 0, 0
		for _, st := range states {
			if st == 2 {
				req++
			}
			if st == 1 || st == 3 {
				ok++
			}
		}
		switch {
		case req > 0:
			non++
		case ok == 12:
			compliant++
		}
	}
	if got.Computers.Compliant != compliant || got.Computers.NonCompliant != non {
		t.Errorf("computers = %+v, want compliant %d non-compliant %d", got.Computers, compliant, non)
	}
	// The analyst view agrees, and the raw log holds each (client, serial) once.
	db := database(s.code)
	res, code := s.sql("SELECT count() AS n FROM " + db + ".v_update_compliance")
	if code != 200 || res.Rows[0][0].(float64) != float64(len(o)) {
		t.Errorf("v_update_compliance rows = %v (status %d), want %d", res.Rows, code, len(o))
	}
	res, _ = s.sql("SELECT count() FROM " + db + ".state_messages FINAL")
	if n := res.Rows[0][0].(float64); n != 40*14+1 {
		t.Errorf("raw log holds %v distinct messages, want %d", n, 40*14+1)
	}
	// Read-only SQL refuses writes.
	if _, code := s.sql("DROP TABLE " + db + ".current_state"); code != 400 {
		t.Errorf("DROP via /v1/sql: status %d, want 400", code)
	}
	if _, code := s.sql("SELECT 1; DROP TABLE " + db + ".current_state"); code != 400 {
		t.Errorf("multi-statement via /v1/sql: status %d, want 400", code)
	}
}

func TestRejectsBadInputNamingTheField(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{tune: func(c *runConfig) { c.Ingest.MaxBodyBytes = 4096; c.Ingest.MaxMessages = 20 }})
	good := func() map[string]any {
		return map[string]any{"v": 1, "client": "c1", "site": s.code, "messages": []any{
			map[string]any{"serial": 1, "time": 1, "topic_type": 500, "topic_id": "KB1", "state": 2, "error": 0}}}
	}
	type tc struct {
		name   string
		mutate func(map[string]any)
		body   []byte
		ctype  string
		status int
		field  string
	}
	bigMsgs := make([]any, 21)
	for i := range bigMsgs {
		bigMsgs[i] = map[string]any{"serial": i + 1, "time": 1, "topic_type": 500, "topic_id": "KB1", "state": 2, "error": 0}
	}
	cases := []tc{
		{name: "state out of range", mutate: func(m map[string]any) { m["messages"].([]any)[0].(map[string]any)["state"] = 9 }, status: 400, field: "messages[0].state"},
		{name: "unknown topic type", mutate: func(m map[string]any) { m["messages"].([]any)[0].(map[string]any)["topic_type"] = 999 }, status: 400, field: "messages[0].topic_type"},
		{name: "missing client", mutate: func(m map[string]any) { delete(m, "client") }, status: 400, field: "client"},
		{name: "zero serial", mutate: func(m map[string]any) { m["messages"].([]any)[0].(map[string]any)["serial"] = 0 }, status: 400, field: "messages[0].serial"},
		{name: "wrong type", mutate: func(m map[string]any) { m["messages"].([]any)[0].(map[string]any)["state"] = "two" }, status: 400, field: "messages[0].state"},
		{name: "unknown field", mutate: func(m map[string]any) { m["topicType"] = 1 }, status: 400, field: "topicType"},
		{name: "bad version", mutate: func(m map[string]any) { m["v"] = 9 }, status: 400, field: "v"},
		{name: "wrong site", mutate: func(m map[string]any) { m["site"] = "ELSEWHERE" }, status: 403, field: "site"},
		{name: "too many messages", mutate: func(m map[string]any) { m["messages"] = bigMsgs }, status: 413, field: "messages"},
		{name: "body too large", body: bytes.Repeat([]byte(" "), 5000), status: 413, field: "body"},
		{name: "not json", body: []byte("{"), status: 400, field: "body"},
		{name: "garbage msgpack", body: []byte{0xc1, 0x00}, ctype: schema.MediaMsgpack, status: 400, field: "report"},
		{name: "wrong media type", body: []byte("x"), ctype: "text/plain", status: 415, field: "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.body
			if body == nil {
				m := good()
				c.mutate(m)
				body, _ = json.Marshal(m)
			}
			ct := c.ctype
			if ct == "" {
				ct = schema.MediaJSON
			}
			resp, err := http.Post(s.url+"/v1/reports", ct, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb schema.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
				t.Fatalf("error body is not JSON: %v", err)
			}
			if resp.StatusCode != c.status || eb.Error.Field != c.field || eb.Error.Message == "" {
				t.Errorf("got %d %+v, want %d naming field %q", resp.StatusCode, eb.Error, c.status, c.field)
			}
		})
	}
	// Nothing rejected reached the store.
	time.Sleep(300 * time.Millisecond)
	if c := s.compliance(); len(c.Updates) != 0 {
		t.Errorf("rejected reports were folded: %+v", c.Updates)
	}
}

// flakyStore fails every insert while down: the store being unreachable, a fault that
// cannot be caused in chDB itself.
type flakyStore struct {
	siteStore
	down     atomic.Bool
	failures atomic.Int64
}

func (f *flakyStore) Insert(ctx context.Context, rows schema.Rows) error {
	if f.down.Load() {
		f.failures.Add(1)
		return errors.New("store unavailable (injected)")
	}
	return f.siteStore.Insert(ctx, rows)
}

func TestReportsAcceptedWhileStoreDownAreFoldedOnce(t *testing.T) {
	t.Parallel()
	fs := &flakyStore{}
	fs.down.Store(true)
	s := startSite(t, siteOpts{wrap: func(st siteStore) siteStore { fs.siteStore = st; return fs },
		tune: func(c *runConfig) {
			c.Projector.RetryMax, c.Projector.LagEvery = 100*time.Millisecond, 50*time.Millisecond
		}})
	ctx := context.Background()
	o := oracle{}
	for c := 0; c < 30; c++ {
		cl := s.client(fmt.Sprintf("pc-%02d", c))
		msgs := []schema.StateMessage{
			{TopicType: 500, TopicID: "KB1", State: int32(c % 4)},
			{TopicType: 500, TopicID: "KB2", State: int32((c + 1) % 4)},
		}
		if err := cl.Report(ctx, true, msgs...); err != nil {
			t.Fatalf("ingest must accept while the store is down: %v", err)
		}
		o.add(&schema.Report{Client: fmt.Sprintf("pc-%02d", c), Messages: msgs})
	}
	deadline := time.Now().Add(30 * time.Second)
	for fs.failures.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if fs.failures.Load() < 3 {
		t.Fatal("projector never tried the store")
	}
	if c := s.compliance(); len(c.Updates) != 0 {
		t.Fatalf("nothing can be visible while the store is down: %+v", c.Updates)
	}
	// The backlog shows: the group's lag, read from the broker, holds all 30 reports.
	lag := func() float64 { return promValue(t, s.url, `statepipe_projector_lag_records{`) }
	eventually(t, func() string {
		if n := lag(); n != 30 {
			return fmt.Sprintf("lag %v records while the store is down, want 30", n)
		}
		return ""
	})
	fs.down.Store(false)
	s.waitFor(o)
	eventually(t, func() string {
		if n := lag(); n != 0 {
			return fmt.Sprintf("lag %v records after the store came back, want 0", n)
		}
		return ""
	})
	res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".state_messages FINAL")
	if n := res.Rows[0][0].(float64); n != 60 {
		t.Errorf("raw log holds %v messages, want 60", n)
	}
}

func TestReplayFromTheLogChangesNothing(t *testing.T) {
	t.Parallel()
	if realKafka() != nil {
		t.Skip("restart of the embedded broker; the real-Kafka run covers replay by group below")
	}
	data := t.TempDir()
	s := startSite(t, siteOpts{data: data})
	ctx := context.Background()
	o := oracle{}
	for c := 0; c < 20; c++ {
		cl := s.client(fmt.Sprintf("pc-%02d", c))
		msgs := []schema.StateMessage{{TopicType: 500, TopicID: "KB1", State: int32(c % 4)}}
		if err := cl.Report(ctx, true, msgs...); err != nil {
			t.Fatal(err)
		}
		o.add(&schema.Report{Client: fmt.Sprintf("pc-%02d", c), Messages: msgs})
	}
	before := s.waitFor(o)
	s.stop()
	// Restart on the same persisted broker with a new consumer group: the projector re-folds
	// the whole topic into the same tables.
	s2 := startSite(t, siteOpts{code: s.code, data: data, group: "replay"})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, _ := s2.sql("SELECT count() FROM " + database(s.code) + ".raw_reports")
		if res.Rows[0][0].(float64) >= 40 { // every record inserted twice, before merge
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := s2.waitFor(o)
	if fmt.Sprint(before.Updates) != fmt.Sprint(after.Updates) || before.Computers != after.Computers {
		t.Errorf("replay changed the report:\n before %+v\n after  %+v", before, after)
	}
}

func TestReplayByNewGroup(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	o := oracle{}
	for c := 0; c < 10; c++ {
		cl := s.client(fmt.Sprintf("pc-%02d", c))
		msgs := []schema.StateMessage{{TopicType: 500, TopicID: "KB9", State: int32(c % 4)}}
		if err := cl.Report(ctx, true, msgs...); err != nil {
			t.Fatal(err)
		}
		o.add(&schema.Report{Client: fmt.Sprintf("pc-%02d", c), Messages: msgs})
	}
	s.waitFor(o)
	if realKafka() == nil {
		return // the embedded broker is per site: TestReplayFromTheLogChangesNothing covers it
	}
	// A second projector in a new group on the same real broker replays the topic.
	s2 := startSite(t, siteOpts{code: s.code, group: "replay-" + s.code})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, _ := s2.sql("SELECT count() FROM " + database(s.code) + ".raw_reports")
		if res.Rows[0][0].(float64) >= 20 { // every record inserted twice, before merge
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s2.waitFor(o)
}

// A full scan of a real catalog (30,000 updates, ~2.5 MB) is one report and one Kafka record:
// above Kafka's 1 MiB default, so statepipe creates its topics with a larger max.message.bytes.
func TestFullScanOfALargeCatalogIsAccepted(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	msgs := make([]schema.StateMessage, 30000)
	o := oracle{}
	for u := range msgs {
		// Update ids are random GUIDs, as in a real catalog: they do not compress away.
		msgs[u] = schema.StateMessage{TopicType: 500, TopicID: fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x",
			rand.Uint32(), rand.IntN(1<<16), rand.IntN(1<<12), rand.IntN(1<<12), rand.Int64N(1<<48)), State: int32(u % 4),
			Params: []string{fmt.Sprintf("%x", rand.Uint64())}}
	}
	if err := s.client("big-client").Report(context.Background(), true, msgs...); err != nil {
		t.Fatal(err)
	}
	o.add(&schema.Report{Client: "big-client", Messages: msgs})
	s.waitFor(o)
}
