package main

// A randomized property test of DESIGN §3 rule 6: counts and reports equal what an oracle
// computes from the same message history, exactly, under duplicates, reordering across and
// within clients, and crashes with replays. The history is generated from a printed seed;
// the oracle is computed here from the generated history alone (it shares no code with
// projector/ or report/), and the site is stopped and started on its data several times
// while reports are in flight.
//
//	STATEPIPE_PROPERTY_SEED=N  reproduces a run's history, delivery order and kill points
//	                           (not the interleaving of the concurrent senders, nor the
//	                           exact instant of each kill)
//	STATEPIPE_PROPERTY_LONG=1  ten times the clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/projector/fold"
	"github.com/statepipe/statepipe/schema"
)

const (
	propertySeedEnv = "STATEPIPE_PROPERTY_SEED"
	propertyLongEnv = "STATEPIPE_PROPERTY_LONG"
)

// propSize is how big a generated history is.
type propSize struct {
	clients     int           // clients that report
	ghosts      int           // collection members that never report
	updates     int           // catalog entries
	strays      int           // updates clients report that the catalog does not hold
	listUpdates int           // catalog entries in the update list
	maxLater    int           // most reports a client sends after its first
	dupPct      int           // percent of reports delivered twice
	workers     int           // concurrent senders
	converge    time.Duration // how long the projection may take to catch up at the end
}

func TestPropertyReportsEqualOracleUnderDuplicatesReorderingAndKills(t *testing.T) {
	// Not parallel: once, with three other end-to-end tests and another package's on 2 cores,
	// the site started after the last kill folded nothing more for 2 minutes (its projector's
	// group membership answered "Unknown Member ID" on a commit, then it rejoined; the seed
	// passes alone and in 6 concurrent copies). Until that is understood it runs alone, and a
	// run that does not converge logs the projector's metrics at the end.
	requireChdb(t)
	began := time.Now()
	seed := rand.Uint64()
	if v := os.Getenv(propertySeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("cannot parse %s=%q: %v", propertySeedEnv, v, err)
		}
	}
	size := propSize{clients: 200, ghosts: 5, updates: 15, strays: 3, listUpdates: 10, maxLater: 8,
		dupPct: 20, workers: 8, converge: 2 * time.Minute}
	long := os.Getenv(propertyLongEnv) == "1"
	if long {
		size.clients, size.ghosts, size.converge = 2000, 50, 5*time.Minute
	}
	t.Logf("seed %d (reproduce with %s=%d), long=%v", seed, propertySeedEnv, seed, long)
	rng := rand.New(rand.NewPCG(seed, seed))

	data := t.TempDir()
	var written atomic.Int64 // raw rows the store acknowledged, over every run of the site
	counting := func(st siteStore) siteStore { return &propCountingStore{siteStore: st, raw: &written} }
	s := startSite(t, siteOpts{data: data, wrap: counting})
	h := genPropHistory(rng, size, s.code)
	o := h.oracle()
	deliveries := h.deliveries(rng, size.dupPct)
	nKills := 3 + rng.IntN(3)
	kills := killPoints(rng, len(deliveries), nKills)
	t.Logf("history: %d clients (+%d never reporting), %d catalog updates (+%d strays), list of %d, collection of %d; "+
		"%d reports, %d deliveries (%d duplicates), %d messages, %d live keys; kills near deliveries %v",
		size.clients, size.ghosts, size.updates, size.strays, len(h.list), len(h.collection),
		len(h.reports), len(deliveries), len(deliveries)-len(h.reports), o.messages, len(o.live), kills)

	// Reference data, once, at the beginning.
	s.importRef("catalog", h.catalogLines()...)
	s.importRef("lists", mustJSON(map[string]any{"id": h.listID, "name": "property list", "updates": h.list}))
	s.importRef("collections", mustJSON(map[string]any{"id": h.collID, "name": "property ring", "members": h.collection}))

	// Deliver through real HTTP ingest with concurrent senders; kill the whole site at the
	// chosen points while the senders' reports are in flight, and start it again on the same
	// data dir and site code (under real Kafka the data dir is unused; the same path runs).
	snd := &propSender{site: s, http: &http.Client{Timeout: 30 * time.Second}}
	restart := func() {
		snd.mu.Lock() // senders wait for the new site; those already in flight finish or fail
		defer snd.mu.Unlock()
		code := snd.site.code
		snd.site.stop()
		snd.site = startSite(t, siteOpts{code: code, data: data, wrap: counting})
		snd.restarts++
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work := make(chan *schema.Report)
	var wg sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for range size.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := snd.send(ctx, r); err != nil {
					sendErr.CompareAndSwap(nil, &err)
					cancel()
				}
			}
		}()
	}
	deliverStart := time.Now()
	// A feeder hands deliveries to the senders and says when it passes a kill point; the test
	// goroutine then waits a random pause, with reports still flowing, and restarts the site,
	// so each kill catches ingest and the projector at a different point of their cycle
	// (fetch, linger, insert, commit) with requests in flight.
	pauses := make([]time.Duration, len(kills))
	for i := range pauses {
		pauses[i] = time.Duration(rng.IntN(120)) * time.Millisecond
	}
	killAt := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		k := 0
		for i, r := range deliveries {
			if k < len(kills) && i == kills[k] {
				k++
				select {
				case killAt <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
			select {
			case work <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for _, pause := range pauses {
		select {
		case <-killAt:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(pause)
		restart()
	}
	<-fed
	close(work)
	wg.Wait()
	if p := sendErr.Load(); p != nil {
		t.Fatalf("cannot deliver a report: %v", *p)
	}
	deliverTook := time.Since(deliverStart)
	restart() // and a final one, after the last delivery
	t.Logf("delivered %d reports in %v with %d restarts and %d send retries",
		len(deliveries), deliverTook.Round(time.Millisecond), snd.restarts, snd.retries.Load())

	convergeStart := time.Now()
	final := snd.site
	t.Cleanup(func() {
		// A run that never converged (seen once under a loaded CI, not reproduced with its
		// seed since): what the projector's group and lag said at the end, for whoever looks.
		if !t.Failed() {
			return
		}
		resp, err := http.Get(final.url + "/metrics")
		if err != nil {
			t.Logf("metrics at the end: %v", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "statepipe_projector_") && !strings.Contains(l, "_bucket") {
				lines = append(lines, l)
			}
		}
		t.Logf("the projector's metrics at the end:\n%s", strings.Join(lines, "\n"))
	})
	db := database(final.code)
	scopes := []struct {
		name, query string
		want        propCompliance
	}{
		{"collection " + h.collID, "?list=" + h.listID + "&collection=" + h.collID, o.collection},
		{"site", "?list=" + h.listID, o.site},
		// The same computed by scanning the live states: the aggregates must agree with it.
		{"collection " + h.collID + " (scan)", "?list=" + h.listID + "&collection=" + h.collID + "&source=scan", o.collection},
		{"site (scan)", "?list=" + h.listID + "&source=scan", o.site},
	}
	// The raw log holding every distinct message means the topic is folded; from then on a
	// mismatch that outlives a short settling time is a wrong answer, not a late one.
	const settle = 15 * time.Second
	var caughtUp time.Time
	eventuallyWithin(t, size.converge, func() string {
		fail := func(format string, args ...any) string {
			msg := fmt.Sprintf("seed %d: ", seed) + fmt.Sprintf(format, args...)
			if !caughtUp.IsZero() && time.Since(caughtUp) > settle {
				t.Fatalf("still not equal to the oracle %v after the raw log was complete: %s", settle, msg)
			}
			return msg
		}
		count := func(what, sql string, want int) string {
			res, code := final.sql(sql)
			if code != 200 || len(res.Rows) != 1 {
				return fmt.Sprintf("%s: SQL answered %d", what, code)
			}
			if n := res.Rows[0][0].(float64); n != float64(want) {
				return fail("%s: got %v, want %d", what, n, want)
			}
			return ""
		}
		if d := count("distinct messages in the raw log", "SELECT count() FROM "+db+".state_messages FINAL", o.messages); d != "" {
			return d
		}
		if caughtUp.IsZero() {
			caughtUp = time.Now()
		}
		for _, sc := range scopes {
			var got propComplianceJSON
			if code := final.get("/v1/reports/compliance"+sc.query, &got); code != 200 {
				return fail("%s scope: compliance answered %d", sc.name, code)
			}
			if d := sc.want.diff(&got); d != "" {
				return fail("%s scope: %s", sc.name, d)
			}
		}
		return count("live keys", "SELECT count() FROM "+db+".v_live_state", len(o.live))
	})
	var sent int64
	for _, r := range deliveries {
		sent += int64(len(r.Messages))
	}
	t.Logf("the projector wrote %d raw rows for %d messages delivered: %d written again (a batch inserted but not committed before a kill, or a send retried after a lost answer)",
		written.Load(), sent, written.Load()-sent)
	t.Logf("timing: reports equal the oracle %v after the final restart; total %v",
		time.Since(convergeStart).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// eventuallyWithin is eventually with a deadline of the caller's choosing.
func eventuallyWithin(t *testing.T, d time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		if last = f(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("not equal to the oracle after %v: %s", d, last)
}

// propCountingStore counts the messages of the raw-log rows the store acknowledged.
type propCountingStore struct {
	siteStore
	raw *atomic.Int64
}

func (c *propCountingStore) Insert(ctx context.Context, rows schema.Rows) error {
	err := c.siteStore.Insert(ctx, rows)
	if r, ok := rows.(*fold.ReportRows); ok && err == nil {
		c.raw.Add(int64(r.Messages()))
	}
	return err
}

// propSender posts reports exactly as generated (serials included) to whichever site is
// current, retrying across restarts: a report whose answer was lost may have been accepted,
// so a retry may be one more duplicate, which is the client's right (rule 1).
type propSender struct {
	mu       sync.RWMutex
	site     *testSite
	restarts int
	http     *http.Client
	retries  atomic.Int64
}

func (p *propSender) send(ctx context.Context, r *schema.Report) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p.mu.RLock()
		s := p.site
		p.mu.RUnlock()
		c, err := client.New(client.Config{URL: s.url, Site: s.code, ClientID: r.Client, HTTPClient: p.http,
			MaxAttempts: 1})
		if err != nil {
			return err
		}
		_, err = c.Send(ctx, r)
		if err == nil {
			return nil
		}
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			return fmt.Errorf("client %s, serials %d..: %w", r.Client, r.Messages[0].Serial, err)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("client %s, gave up retrying: %w", r.Client, err)
		}
		p.retries.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
}

// propUpdate is one catalog entry.
type propUpdate struct {
	id          string
	article     string
	firstSynced int64 // Unix ms
}

// propHistory is a generated message history with its reference data.
type propHistory struct {
	site       string
	updates    []propUpdate // the catalog
	strays     []string     // reported, not in the catalog
	listID     string
	list       []string // update ids, a subset of the catalog
	collID     string
	collection []string // members: most reporting clients and a few that never report
	clients    []string // every client that reports
	reports    []*schema.Report
}

// Times: updates were first synchronised around t0; clients' clocks range around it.
var propT0 = ms("2024-10-01T00:00:00Z")

const propDay = int64(24 * time.Hour / time.Millisecond)

func propGUID(rng *rand.Rand) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x",
		rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Int64N(1<<48))
}

func genPropHistory(rng *rand.Rand, size propSize, site string) *propHistory {
	h := &propHistory{site: site, listID: "L-" + propGUID(rng)[:8], collID: "C-" + propGUID(rng)[:8]}
	for i := range size.updates {
		// Some updates were synchronised long before the clients' scans, some in the middle
		// of them, some after most of them.
		var fs int64
		switch i % 3 {
		case 0:
			fs = propT0 - 30*propDay + rng.Int64N(10*propDay)
		case 1:
			fs = propT0 + rng.Int64N(30*propDay)
		default:
			fs = propT0 + 45*propDay + rng.Int64N(30*propDay)
		}
		h.updates = append(h.updates, propUpdate{id: propGUID(rng), article: fmt.Sprintf("KB50%05d", rng.IntN(100000)), firstSynced: fs})
	}
	for range size.strays {
		h.strays = append(h.strays, "stray-"+propGUID(rng))
	}
	for _, i := range rng.Perm(size.updates)[:size.listUpdates] {
		h.list = append(h.list, h.updates[i].id)
	}
	for range size.clients {
		h.clients = append(h.clients, propGUID(rng))
	}
	for _, c := range h.clients {
		if rng.IntN(100) < 70 {
			h.collection = append(h.collection, c)
		}
	}
	for range size.ghosts {
		h.collection = append(h.collection, "ghost-"+propGUID(rng))
	}
	rng.Shuffle(len(h.collection), func(i, j int) { h.collection[i], h.collection[j] = h.collection[j], h.collection[i] })
	for _, c := range h.clients {
		h.genClient(rng, c, 1+rng.IntN(size.maxLater))
	}
	return h
}

// genClient appends one client's reports: a full 500 report, then a mix of delta and full
// 500 reports, scans, enforcement messages and heartbeats, serials strictly increasing (with
// the odd gap), messages inside a report in random order.
func (h *propHistory) genClient(rng *rand.Rand, client string, later int) {
	serial := uint64(rng.IntN(3))
	pool := make([]string, 0, len(h.updates)+len(h.strays))
	for _, u := range h.updates {
		pool = append(pool, u.id)
	}
	pool = append(pool, h.strays...)
	for r := 0; r <= later; r++ {
		var msgs []schema.StateMessage
		full := false
		kind := rng.IntN(100)
		switch {
		case r == 0 || kind < 15: // full 500: the updates that apply now; others drop (rule 2)
			full = true
			keep := 30 + rng.IntN(70)
			switch {
			case r == 0:
				keep = 60 + rng.IntN(40)
			case rng.IntN(100) < 10:
				keep = 0 // nothing applies any more: every 500 key goes
			}
			for _, u := range pool {
				if rng.IntN(100) < keep {
					msgs = append(msgs, h.msg500(rng, u))
				}
			}
			if len(msgs) == 0 || rng.IntN(100) < 20 {
				// An empty full report (nothing applies) still needs a message; a full report
				// may also carry other types, which it does not replace.
				msgs = append(msgs, h.scan(rng))
			}
		case kind < 50: // delta 500
			for range 1 + rng.IntN(4) {
				u := pool[rng.IntN(len(pool))]
				if len(msgs) > 0 && rng.IntN(100) < 15 {
					u = msgs[rng.IntN(len(msgs))].TopicID // the same key twice in one report
				}
				msgs = append(msgs, h.msg500(rng, u))
			}
		case kind < 75: // scans
			for range 1 + rng.IntN(2) {
				msgs = append(msgs, h.scan(rng))
			}
		case kind < 93: // enforcement, with errors
			for range 1 + rng.IntN(3) {
				msgs = append(msgs, h.enforcement(rng, pool[rng.IntN(len(pool))]))
			}
		default: // heartbeat: unkeyed, in the raw log only
			msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicHeartbeat, State: 0, Time: h.clientTime(rng)})
		}
		if !full && rng.IntN(100) < 20 { // a side message of another kind
			switch rng.IntN(3) {
			case 0:
				msgs = append(msgs, h.scan(rng))
			case 1:
				msgs = append(msgs, h.enforcement(rng, pool[rng.IntN(len(pool))]))
			default:
				msgs = append(msgs, schema.StateMessage{TopicType: schema.TopicHeartbeat, Time: h.clientTime(rng)})
			}
		}
		// Serials in a random order of kinds (a full report's smallest serial may be another
		// type's), then the messages in a random order of serials.
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		serial += uint64(rng.IntN(3)) // the odd gap
		for i := range msgs {
			serial++
			msgs[i].Serial = serial
		}
		rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
		rep := &schema.Report{V: schema.Version, Client: client, Site: h.site, Messages: msgs}
		if full {
			rep.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance}
		}
		h.reports = append(h.reports, rep)
	}
}

// clientTime is a client clock reading: not ordered with serials.
func (h *propHistory) clientTime(rng *rand.Rand) int64 {
	return propT0 - 45*propDay + rng.Int64N(120*propDay)
}

func (h *propHistory) msg500(rng *rand.Rand, update string) schema.StateMessage {
	st := []int32{0, 1, 1, 2, 2, 3, 3, 3}[rng.IntN(8)]
	return schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: update, State: st, Time: h.clientTime(rng)}
}

// scan is a 501 message: mostly successful (3 Completed, 6 Completed with errors), else a
// failure or still running; its time sometimes exactly at, or a millisecond around, an
// update's first synchronisation (the comparison is strict).
func (h *propHistory) scan(rng *rand.Rand) schema.StateMessage {
	st := []int32{3, 3, 3, 6, 6, 5, 5, 2}[rng.IntN(8)]
	at := h.clientTime(rng)
	if rng.IntN(100) < 15 {
		at = h.updates[rng.IntN(len(h.updates))].firstSynced + int64(rng.IntN(3)-1)
	}
	m := schema.StateMessage{TopicType: schema.TopicScan, TopicID: []string{"wsus-1", "wsus-2"}[rng.IntN(2)], State: st, Time: at}
	if st == 5 || st == 6 {
		m.Error = propHResults[rng.IntN(len(propHResults))]
	}
	return m
}

var propHResults = []int32{int32(-2145124329) /* 0x80240017 */, int32(-2147024894) /* 0x80070002 */, int32(-2145107924) /* 0x8024402C */, int32(-2147012867) /* 0x80072EFD */}

func (h *propHistory) enforcement(rng *rand.Rand, update string) schema.StateMessage {
	st := int32(rng.IntN(15))
	m := schema.StateMessage{TopicType: schema.TopicUpdateEnforcement, TopicID: update, State: st, Time: h.clientTime(rng)}
	if st == 6 || st == 11 || st == 14 {
		m.Error = propHResults[rng.IntN(len(propHResults))]
		m.Params = []string{"attempt", strconv.Itoa(1 + rng.IntN(3))}
	}
	return m
}

func (h *propHistory) catalogLines() []string {
	var lines []string
	for _, u := range h.updates {
		lines = append(lines, mustJSON(map[string]any{"id": u.id, "article": u.article, "title": "Update " + u.article,
			"classification": "Security Updates", "severity": "Important", "product": "Windows 11",
			"first_synced": time.UnixMilli(u.firstSynced).UTC().Format(time.RFC3339Nano)}))
	}
	return lines
}

// deliveries returns every report once, dupPct percent of them twice (a client's retry, an
// exact copy), in a random order across and within clients.
func (h *propHistory) deliveries(rng *rand.Rand, dupPct int) []*schema.Report {
	out := slices.Clone(h.reports)
	for _, r := range h.reports {
		if rng.IntN(100) < dupPct {
			out = append(out, r)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// killPoints returns n distinct delivery indexes, sorted, away from the very start.
func killPoints(rng *rand.Rand, deliveries, n int) []int {
	seen := map[int]bool{}
	var out []int
	for len(out) < n && len(out) < deliveries-1 {
		i := 1 + rng.IntN(deliveries-1)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// The oracle, computed from the history alone.

type propKey struct {
	client  string
	topic   schema.TopicType
	topicID string
}

type propCounts struct{ Installed, Required, NotRequired, Unknown, Total int64 }

type propComputers struct{ Compliant, NonCompliant, Unknown, Total int64 }

type propUpdateCounts struct {
	id string
	propCounts
}

// propCompliance is the expected compliance report for one scope.
type propCompliance struct {
	updates   []propUpdateCounts // by update id
	computers propComputers
}

type propOracle struct {
	messages   int // distinct (client, serial)
	live       map[propKey]schema.StateMessage
	collection propCompliance
	site       propCompliance
}

func (h *propHistory) oracle() *propOracle {
	o := &propOracle{live: map[propKey]schema.StateMessage{}}
	type ct struct {
		client string
		topic  schema.TopicType
	}
	marker := map[ct]uint64{} // greatest smallest-serial of a full report, per (client, type)
	lastScan := map[string]int64{}
	lastScanSerial := map[string]uint64{}
	latest := map[propKey]schema.StateMessage{}
	for _, r := range h.reports {
		o.messages += len(r.Messages)
		lo := r.Messages[0].Serial
		for _, m := range r.Messages {
			lo = min(lo, m.Serial)
		}
		for _, t := range r.FullTypes {
			marker[ct{r.Client, t}] = max(marker[ct{r.Client, t}], lo)
		}
		for _, m := range r.Messages {
			if m.TopicType == schema.TopicScan && (m.State == 3 || m.State == 6) {
				// The latest successful scan is the one with the greatest serial (time is
				// shown, never used to order); its client time is what is compared.
				if s, ok := lastScanSerial[r.Client]; !ok || m.Serial > s {
					lastScanSerial[r.Client] = m.Serial
					lastScan[r.Client] = m.Time
				}
			}
			if m.TopicType == schema.TopicHeartbeat {
				continue // not keyed
			}
			k := propKey{r.Client, m.TopicType, m.TopicID}
			if cur, ok := latest[k]; !ok || m.Serial > cur.Serial {
				latest[k] = m
			}
		}
	}
	for k, m := range latest {
		if marker[ct{k.client, k.topic}] > m.Serial {
			continue // removed by a later full report (rule 2)
		}
		o.live[k] = m
	}
	firstSynced := map[string]int64{}
	for _, u := range h.updates {
		firstSynced[u.id] = u.firstSynced
	}
	list := slices.Sorted(slices.Values(h.list))
	compliance := func(scope []string) propCompliance {
		var pc propCompliance
		per := make([]propCounts, len(list))
		for _, c := range scope {
			required, ok := false, 0
			for i, u := range list {
				per[i].Total++
				v := int32(0)
				if m, live := o.live[propKey{c, schema.TopicUpdateCompliance, u}]; live && m.State >= 1 && m.State <= 3 {
					v = m.State
				} else if at, scanned := lastScan[c]; scanned && at > firstSynced[u] {
					v = 1
				}
				switch v {
				case 3:
					per[i].Installed++
					ok++
				case 2:
					per[i].Required++
					required = true
				case 1:
					per[i].NotRequired++
					ok++
				default:
					per[i].Unknown++
				}
			}
			pc.computers.Total++
			switch {
			case required:
				pc.computers.NonCompliant++
			case ok == len(list):
				pc.computers.Compliant++
			default:
				pc.computers.Unknown++
			}
		}
		for i, u := range list {
			pc.updates = append(pc.updates, propUpdateCounts{u, per[i]})
		}
		return pc
	}
	o.collection = compliance(h.collection)
	o.site = compliance(h.clients)
	return o
}

// propComplianceJSON is the compliance report as DESIGN §4 specifies its JSON.
type propComplianceJSON struct {
	Updates []struct {
		UpdateID    string `json:"update_id"`
		Installed   int64  `json:"installed"`
		Required    int64  `json:"required"`
		NotRequired int64  `json:"not_required"`
		Unknown     int64  `json:"unknown"`
		Total       int64  `json:"total"`
	} `json:"updates"`
	Computers struct {
		Compliant    int64 `json:"compliant"`
		NonCompliant int64 `json:"non_compliant"`
		Unknown      int64 `json:"unknown"`
		Total        int64 `json:"total"`
	} `json:"computers"`
}

// diff names the first update (in id order) whose counts differ, or the computers block.
func (want propCompliance) diff(got *propComplianceJSON) string {
	byID := map[string]propCounts{}
	var ids []string
	for _, u := range got.Updates {
		byID[u.UpdateID] = propCounts{u.Installed, u.Required, u.NotRequired, u.Unknown, u.Total}
		ids = append(ids, u.UpdateID)
	}
	for _, w := range want.updates {
		g, ok := byID[w.id]
		if !ok {
			return fmt.Sprintf("update %s missing from the report (it has %s)", w.id, strings.Join(ids, ","))
		}
		if g != w.propCounts {
			return fmt.Sprintf("update %s: got %+v, want %+v", w.id, g, w.propCounts)
		}
	}
	if len(got.Updates) != len(want.updates) {
		return fmt.Sprintf("report has %d updates (%s), want %d", len(got.Updates), strings.Join(ids, ","), len(want.updates))
	}
	if g := (propComputers{got.Computers.Compliant, got.Computers.NonCompliant, got.Computers.Unknown, got.Computers.Total}); g != want.computers {
		return fmt.Sprintf("computers: got %+v, want %+v", g, want.computers)
	}
	return ""
}
