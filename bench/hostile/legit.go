package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"bytes"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/schema"
)

// Agent is a client of the site driven by hand (raw HTTP, no SDK retries), so that every
// answer is seen: attackers, the canary, and the machines of the identity races. Its reports
// that the site acknowledges go to the oracle.
type Agent struct {
	r      *Run
	ID     string
	Key    ed25519.PrivateKey
	Cred   string
	Base   uint64
	mu     sync.Mutex
	serial uint64
}

// enrollBody is an enrolment request's JSON.
func enrollBody(id string, pub ed25519.PublicKey) []byte { return enrollBodyGrant(id, pub, "") }

// enrollBodyGrant is an enrolment request carrying the one-time grant a revocation answered
// (sites that issue grants need it to enrol a revoked id again); no grant, no field.
func enrollBodyGrant(id string, pub ed25519.PublicKey, grant string) []byte {
	m := map[string]any{"client": id, "site": site, "public_key": pub}
	if grant != "" {
		m["grant"] = grant
	}
	b, _ := json.Marshal(m)
	return b
}

// grantOf reads the one-time grant of a revocation's answer ("" when the site issues none).
func grantOf(res Resp) string {
	var v struct {
		Grant string `json:"grant"`
	}
	_ = json.Unmarshal(res.Body, &v)
	return v.Grant
}

// enrollRaw posts one enrolment, once.
func (r *Run) enrollRaw(ctx context.Context, body []byte, hdr map[string]string) Resp {
	h := map[string]string{"Content-Type": schema.MediaJSON}
	for k, v := range hdr {
		h[k] = v
	}
	return do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/enroll", bodyOf(body), h)
}

// newAgent enrols id with a new key (or key), retrying 429 and 503 as agents do, for up to
// 60 s; the answer is the last one.
func (r *Run) newAgent(ctx context.Context, id string, key ed25519.PrivateKey) (*Agent, Resp) {
	return r.newAgentGrant(ctx, id, key, "")
}

// newAgentGrant is newAgent with a revocation's one-time grant.
func (r *Run) newAgentGrant(ctx context.Context, id string, key ed25519.PrivateKey, grant string) (*Agent, Resp) {
	if key == nil {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res := r.enrollRaw(ctx, enrollBodyGrant(id, key.Public().(ed25519.PublicKey), grant), nil)
		if res.Status == http.StatusOK {
			var er schema.EnrollResponse
			if err := json.Unmarshal(res.Body, &er); err != nil {
				res.Err = err
				return nil, res
			}
			return &Agent{r: r, ID: id, Key: key, Cred: er.Credential, Base: er.SerialBase, serial: er.SerialBase}, res
		}
		if time.Now().After(deadline) || ctx.Err() != nil || (res.Err == nil && res.Status != 429 && res.Status != 503) {
			return nil, res
		}
		wait := 300 * time.Millisecond
		if ra := res.Header.Get("Retry-After"); ra != "" {
			var s int
			fmt.Sscan(ra, &s)
			wait = time.Duration(s) * time.Second
		}
		time.Sleep(min(wait, 3*time.Second))
	}
}

// post sends body signed with the agent's credential and key.
func (a *Agent) post(ctx context.Context, body []byte, ct string) Resp {
	return do(ctx, a.r.hc, http.MethodPost, a.r.site.URL()+"/v1/reports", bodyOf(body), map[string]string{
		"Content-Type": ct, schema.HeaderCredential: a.Cred, schema.HeaderSignature: schema.SignBody(a.Key, body)})
}

// next returns the agent's next serial.
func (a *Agent) next() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.serial++
	return a.serial
}

// msg is a 500 message with the agent's next serial.
func (a *Agent) msg(update string, state int32) schema.StateMessage {
	return schema.StateMessage{Serial: a.next(), Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: update, State: state}
}

// send posts a report (msgpack), once; an acknowledged one goes to the oracle.
func (a *Agent) send(ctx context.Context, rep *schema.Report) Resp {
	var buf bytes.Buffer
	if err := schema.EncodeReport(&buf, rep); err != nil {
		return Resp{Err: err}
	}
	res := a.post(ctx, buf.Bytes(), schema.MediaMsgpack)
	if res.Err == nil && res.Status == http.StatusOK {
		a.r.oracle.Apply(rep)
	}
	return res
}

// report sends msgs (already numbered) as one report of the agent.
func (a *Agent) report(ctx context.Context, full []schema.TopicType, msgs ...schema.StateMessage) Resp {
	return a.send(ctx, &schema.Report{V: schema.Version, Client: a.ID, Site: site, FullTypes: full, Messages: msgs})
}

// sample is one timed probe or legitimate report.
type sample struct {
	at   time.Time
	lat  time.Duration
	ok   bool
	down bool // the site was down on purpose (kill -9, restart): not counted
	what string
}

// Monitor keeps the probes' and the legitimate load's samples, to judge each attack window.
type Monitor struct {
	mu     sync.Mutex
	health []sample
	canary []sample
	legit  []sample
}

func (m *Monitor) add(list *[]sample, s sample) {
	m.mu.Lock()
	*list = append(*list, s)
	m.mu.Unlock()
}

// WindowStats summarise the samples of a time window.
type WindowStats struct {
	HealthN      int      `json:"health_probes"`
	HealthOK     int      `json:"health_ok"`
	HealthMaxMs  float64  `json:"health_max_ms"`
	CanaryN      int      `json:"canary_reports"`
	CanaryOK     int      `json:"canary_ok"`
	CanaryP99Ms  float64  `json:"canary_p99_ms"`
	CanaryMaxMs  float64  `json:"canary_max_ms"`
	LegitN       int      `json:"legit_reports"`
	LegitFail    int      `json:"legit_failed"`
	LegitP99Ms   float64  `json:"legit_p99_ms"`
	LegitMaxMs   float64  `json:"legit_max_ms"`
	CanaryErrors []string `json:"canary_errors,omitempty"`
	HealthErrors []string `json:"health_errors,omitempty"`
	LegitErrors  []string `json:"legit_errors,omitempty"`
}

func (m *Monitor) window(from, to time.Time) WindowStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w WindowStats
	pick := func(list []sample) (lats []float64, n, ok int, errs []string) {
		for _, s := range list {
			if s.at.Before(from) || s.at.After(to) || s.down {
				continue
			}
			n++
			if s.ok {
				ok++
			} else if len(errs) < 5 {
				errs = append(errs, s.at.Format("15:04:05.000")+" "+s.what)
			}
			lats = append(lats, float64(s.lat)/float64(time.Millisecond))
		}
		sort.Float64s(lats)
		return
	}
	var lats []float64
	lats, w.HealthN, w.HealthOK, w.HealthErrors = pick(m.health)
	w.HealthMaxMs = last(lats)
	lats, w.CanaryN, w.CanaryOK, w.CanaryErrors = pick(m.canary)
	w.CanaryP99Ms, w.CanaryMaxMs = quantile(lats, 0.99), last(lats)
	var legitOK int
	lats, w.LegitN, legitOK, w.LegitErrors = pick(m.legit)
	w.LegitFail = w.LegitN - legitOK
	w.LegitP99Ms, w.LegitMaxMs = quantile(lats, 0.99), last(lats)
	return w
}

func last(s []float64) float64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func quantile(s []float64, q float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s))*q+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// probe runs the health and canary probes until ctx ends: /healthz every 500 ms (2 s
// deadline), and a signed report of the canary agent every second (one attempt, 5 s deadline;
// a report not acknowledged is sent again, same serials, at the next tick).
func (r *Run) probe(ctx context.Context, canary *Agent) {
	var pending *schema.Report
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		down := r.down.Load()
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res := do(hctx, r.probeHC, http.MethodGet, r.site.URL()+"/healthz", nil, nil)
		cancel()
		r.mon.add(&r.mon.health, sample{at: time.Now().Add(-res.Latency), lat: res.Latency, ok: res.Err == nil && res.Status == 200, down: down || r.down.Load(), what: res.Key()})
		if i%2 == 1 {
			continue
		}
		if pending == nil {
			pending = &schema.Report{V: schema.Version, Client: canary.ID, Site: site, Messages: []schema.StateMessage{
				canary.msg("KB-CANARY", int32(1+i%3)),
				{Serial: canary.next(), Time: time.Now().UnixMilli(), TopicType: schema.TopicHeartbeat}}}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var buf bytes.Buffer
		_ = schema.EncodeReport(&buf, pending)
		start := time.Now()
		res = do(cctx, r.probeHC, http.MethodPost, r.site.URL()+"/v1/reports", bodyOf(buf.Bytes()), map[string]string{
			"Content-Type": schema.MediaMsgpack, schema.HeaderCredential: canary.Cred, schema.HeaderSignature: schema.SignBody(canary.Key, buf.Bytes())})
		cancel()
		ok := res.Err == nil && res.Status == 200
		if ok {
			r.oracle.Apply(pending)
			pending = nil
		}
		r.mon.add(&r.mon.canary, sample{at: start, lat: time.Since(start), ok: ok, down: down || r.down.Load(), what: res.Key() + " " + clipped(res.Message, 120)})
	}
}

// Fleet is the legitimate load: enrolled machines reporting through the SDK (full scans,
// deltas, full reports that drop keys, heartbeats), each report retried until acknowledged —
// the SDK retries 429, 503 and network errors; past its attempts the same report (same
// serials) is sent again — so that the oracle holds exactly what the site acknowledged.
type Fleet struct {
	r       *Run
	clients []*legitClient
	gate    sync.RWMutex // senders hold it shared; an oracle check takes it whole
	stop    atomic.Bool
	wg      sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	errMu   sync.Mutex
	errs    []string
}

type legitClient struct {
	id      string
	c       *client.Client
	serial  uint64
	rng     *mrand.Rand
	updates []string
	started bool
}

const legitUpdates = 20

func legitUpdate(i int) string { return fmt.Sprintf("KB50%05d", i+1) }

// newFleet enrols n machines through the SDK.
func (r *Run) newFleet(ctx context.Context, n int) (*Fleet, error) {
	f := &Fleet{r: r}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 20 * time.Second}}
	for i := range n {
		id := fmt.Sprintf("legit-%03d", i)
		c, err := client.Enroll(ctx, client.Config{URL: r.site.URL(), Site: site, ClientID: id, Name: id,
			HTTPClient: hc, MaxAttempts: 10, BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second})
		if err != nil {
			return nil, fmt.Errorf("cannot enrol %s: %w", id, err)
		}
		lc := &legitClient{id: id, c: c, serial: c.Identity().SerialBase, rng: mrand.New(mrand.NewPCG(uint64(i), 42))}
		for u := range legitUpdates {
			lc.updates = append(lc.updates, legitUpdate(u))
		}
		f.clients = append(f.clients, lc)
	}
	return f, nil
}

// Start runs every machine until Stop.
func (f *Fleet) Start() {
	for _, lc := range f.clients {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			time.Sleep(time.Duration(lc.rng.IntN(2000)) * time.Millisecond)
			for !f.stop.Load() {
				f.gate.RLock()
				f.send(lc, f.next(lc))
				f.gate.RUnlock()
				time.Sleep(time.Duration(1000+lc.rng.IntN(2000)) * time.Millisecond)
			}
		}()
	}
}

// Stop lets every machine finish the report it is sending, then returns.
func (f *Fleet) Stop() {
	f.stop.Store(true)
	f.wg.Wait()
}

// Pause blocks new reports until the returned function is called (reports being sent finish
// first).
func (f *Fleet) Pause() func() {
	f.gate.Lock()
	return f.gate.Unlock
}

var hresults = []int32{-2147024891, -2145107924, -2147023293, -2146889721}

// next builds a machine's next report: its first is a full scan, then mostly deltas.
func (f *Fleet) next(lc *legitClient) *schema.Report {
	now := time.Now().UnixMilli()
	num := func(m schema.StateMessage) schema.StateMessage {
		lc.serial++
		m.Serial, m.Time = lc.serial, now
		return m
	}
	rep := &schema.Report{V: schema.Version, Client: lc.id, Site: site}
	p := lc.rng.IntN(100)
	switch {
	case !lc.started || p < 12: // full: every update (first), or a subset that drops the rest
		k := len(lc.updates)
		if lc.started {
			k = 8 + lc.rng.IntN(len(lc.updates)-8)
		}
		rep.Messages = append(rep.Messages, num(schema.StateMessage{TopicType: schema.TopicScan, TopicID: "WSUS", State: 3}))
		for _, i := range lc.rng.Perm(len(lc.updates))[:k] {
			rep.Messages = append(rep.Messages, num(schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: lc.updates[i], State: int32(1 + lc.rng.IntN(3))}))
		}
		rep.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance}
		lc.started = true
	case p < 17:
		rep.Messages = append(rep.Messages, num(schema.StateMessage{TopicType: schema.TopicHeartbeat}))
	default: // a delta: a few updates change, with their enforcement state
		for range 1 + lc.rng.IntN(3) {
			u := lc.updates[lc.rng.IntN(len(lc.updates))]
			st := int32(lc.rng.IntN(4))
			rep.Messages = append(rep.Messages, num(schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: u, State: st}))
			es, e := int32(lc.rng.IntN(15)), int32(0)
			if es == 11 || es == 14 {
				e = hresults[lc.rng.IntN(len(hresults))]
			}
			rep.Messages = append(rep.Messages, num(schema.StateMessage{TopicType: schema.TopicUpdateEnforcement, TopicID: u, State: es, Error: e}))
		}
	}
	return rep
}

// send sends rep until the site acknowledges it; a permanent refusal is a legitimate report
// lost to the attacks, and is recorded.
func (f *Fleet) send(lc *legitClient, rep *schema.Report) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	for {
		_, err := lc.c.Send(ctx, rep)
		if err == nil {
			f.r.oracle.Apply(rep) // the SDK may have renumbered it (a new enrolment): as sent
			for _, m := range rep.Messages {
				lc.serial = max(lc.serial, m.Serial)
			}
			f.sent.Add(1)
			f.r.mon.add(&f.r.mon.legit, sample{at: start, lat: time.Since(start), ok: true, down: f.r.down.Load()})
			return
		}
		var apiErr *client.APIError
		if (errors.As(err, &apiErr) && !apiErr.Temporary()) || ctx.Err() != nil {
			f.failed.Add(1)
			msg := fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), lc.id, err)
			f.errMu.Lock()
			f.errs = append(f.errs, msg)
			f.errMu.Unlock()
			f.r.logf("LEGIT REPORT REFUSED: %s", msg)
			f.r.mon.add(&f.r.mon.legit, sample{at: start, lat: time.Since(start), ok: false, what: clipped(err.Error(), 200)})
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Errors returns the legitimate reports refused for good.
func (f *Fleet) Errors() []string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	return append([]string(nil), f.errs...)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
