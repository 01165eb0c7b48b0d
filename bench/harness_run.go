package bench

import (
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	timerate "golang.org/x/time/rate"

	"github.com/statepipe/statepipe/schema"
)

// The run: workers send the clients' reports, a dispatcher hands each client to them when its
// simulated wake falls due, and a sampler reads the site once a second beside them.

// wakeHeap orders clients by the simulated time they next wake.
type wakeHeap []*simClient

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].wake < h[j].wake }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(*simClient)) }
func (h *wakeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simClock is simulated time: TimeScale × wall time, stopped while paused.
type simClock struct {
	mu     sync.Mutex
	scale  float64
	start  time.Time
	paused time.Duration
	since  time.Time // zero unless paused
}

func (c *simClock) now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	wall := time.Since(c.start) - c.paused
	if !c.since.IsZero() {
		wall -= time.Since(c.since)
	}
	return time.Duration(float64(wall) * c.scale)
}

func (c *simClock) pause() {
	c.mu.Lock()
	c.since = time.Now()
	c.mu.Unlock()
}

// isPaused says whether simulated time is stopped (a checkpoint).
func (c *simClock) isPaused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.since.IsZero()
}

func (c *simClock) resume() {
	c.mu.Lock()
	c.paused += time.Since(c.since)
	c.since = time.Time{}
	c.mu.Unlock()
}

// pacer holds the dispatcher to a report rate: Scenario.Rate, or the steps of a sweep
// (Scenario.Rates, each held for Scenario.Step once the sweep has begun).
type pacer struct {
	limiter   *timerate.Limiter
	rates     []float64
	step      int       // the rate in force
	stepStart time.Time // when it came into force
	lagStart  int64     // the projector's lag then (0 for the first step)
}

// newPacer returns the scenario's pacer, nil when it has no rate.
func newPacer(sc *Scenario) *pacer {
	rates := sc.Rates
	if sc.Rate > 0 {
		rates = []float64{sc.Rate}
	}
	if len(rates) == 0 {
		return nil
	}
	return &pacer{limiter: timerate.NewLimiter(timerate.Limit(rates[0]), burst(rates[0])), rates: rates}
}

// burst is the limiter's burst at rate: a tenth of a second of it.
func burst(rate float64) int { return max(1, int(rate/10)) }

// run sends every client's reports as their simulated wakes fall due, with the sampler beside
// it, then checks the reports a last time. It returns how long from the run's start until that
// final checkpoint was over.
func (h *harness) run(ctx context.Context) (checked time.Duration, err error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.cancel = cancel
	if h.wave == nil { // with a wave, each client joins the wakes once it is enrolled
		for _, c := range h.world.clients {
			h.wakes = append(h.wakes, c)
		}
	}
	heap.Init(&h.wakes)
	h.startWorkers(rctx)
	h.begin = time.Now()
	h.clock.start = h.begin
	if h.wave != nil {
		h.startWave(rctx)
		defer func() { cancel(); h.wave.done.Wait() }()
	}
	stopSampler := h.startSampler(rctx)
	defer stopSampler()
	if err := h.dispatch(ctx, rctx); err != nil {
		cancel()
		h.stopWorkers()
		return 0, err
	}
	h.endSweep()
	h.stopWorkers()
	if h.wave != nil {
		if p := h.wave.err.Load(); p != nil {
			return 0, fmt.Errorf("%w: %w", errWaveEnrol, *p)
		}
	}
	if p := h.stats.sendErr.Load(); p != nil {
		return 0, fmt.Errorf("a report was never acknowledged: %w", *p)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	h.res.SendSeconds = h.lastSend.Sub(h.begin).Seconds()
	h.res.MaxSimLag = Duration(h.simLag)
	h.checkpoint(ctx, "final")
	checked = time.Since(h.begin)
	stopSampler()
	return checked, nil
}

// startWorkers starts the scenario's Concurrency workers, each sending one client's report at
// a time.
func (h *harness) startWorkers(ctx context.Context) {
	h.work = make(chan *simClient, h.sc.Concurrency)
	for range h.sc.Concurrency {
		h.workers.Go(func() {
			for c := range h.work {
				h.send(ctx, c)
				h.reschedule(c)
				h.stats.inFlight.Add(-1)
				h.inFlight.Done()
			}
		})
	}
}

// stopWorkers waits for the reports in flight and stops the workers.
func (h *harness) stopWorkers() {
	h.inFlight.Wait()
	close(h.work)
	h.workers.Wait()
}

// send has client c act at its wake and sends what it reports. A report the SDK gave up on
// stops the run.
func (h *harness) send(ctx context.Context, c *simClient) {
	msgs, full := h.world.report(c, c.wake)
	if len(msgs) == 0 {
		return
	}
	sent := time.Now()
	if err := h.sdk[c.idx].Report(ctx, full, msgs...); err != nil {
		h.stats.sendErr.CompareAndSwap(nil, &err)
		h.cancel()
		return
	}
	if h.phased != nil {
		h.phased.acked(c, h.sdk[c.idx].IsReleased, sent, time.Now())
	}
	if h.hier != nil {
		h.hier.accepted(c.idx, int64(len(msgs)), full, time.Now())
	}
	h.stats.acked.Add(int64(len(msgs)))
	h.stats.reports.Add(1)
	if full && h.stats.firsts.Add(1) == int64(h.sc.Clients) {
		h.stats.firstsMsgs.Store(h.stats.messages())
	}
	h.keep(c, msgs, full)
}

// keep keeps an acknowledged report, as sent, for the raw ceilings: the first SampleMessages
// messages' worth.
func (h *harness) keep(c *simClient, msgs []schema.StateMessage, full bool) {
	if h.cfg.Ceilings == nil || h.stats.kept.Add(int64(len(msgs))) > h.cfg.SampleMessages {
		return
	}
	rep := &schema.Report{V: schema.Version, Client: c.id, Site: h.clientSite(c.idx), Messages: msgs}
	if full {
		rep.FullTypes = []schema.TopicType{schema.TopicUpdateCompliance, schema.TopicScan}
	}
	h.mu.Lock()
	h.kept = append(h.kept, rep)
	h.mu.Unlock()
}

// clientSite is the site client i reports to: its primary in a hierarchy, else the site.
func (h *harness) clientSite(i int) string {
	if h.hier != nil {
		return h.hier.siteOf(i)
	}
	return h.cfg.Site
}

// reschedule puts c back among the wakes at its next one, unless simulated time has ended.
func (h *harness) reschedule(c *simClient) {
	if next := c.nextWake(h.sc.Behaviour.ReportEvery.D()); next >= 0 && !h.stats.ended.Load() {
		c.wake = next
		h.mu.Lock()
		heap.Push(&h.wakes, c)
		h.mu.Unlock()
	}
}

// dispatch hands each client to the workers when its wake falls due, until simulated time
// ends (or, for a scenario without an end, no client will wake again), the last sweep step is
// over or rctx is done. On the way it imports the Patch Tuesday drop, stops for the
// checkpoints and steps the sweep.
func (h *harness) dispatch(ctx, rctx context.Context) error {
	nextCheck := h.sc.Checkpoints.D()
	for rctx.Err() == nil {
		now := h.clock.now()
		ending := h.sc.Duration > 0 && now >= h.sc.Duration.D()
		if ending {
			// Simulated time stops at the end; what fell due before it is still sent, once
			// per client (a client behind its schedule — paced runs — is not caught up).
			now = h.sc.Duration.D()
			h.stats.ended.Store(true)
		}
		if err := h.patchTuesday(ctx, now); err != nil {
			return err
		}
		if nextCheck > 0 && now >= nextCheck {
			h.checkpoint(ctx, strconv.Itoa(len(h.res.Checkpoints)+1))
			nextCheck += h.sc.Checkpoints.D()
			continue
		}
		if h.sweep() {
			return nil
		}
		c, idle := h.due(now, ending)
		if c == nil {
			if idle && (h.sc.Duration == 0 || ending) && h.drained(now, ending) {
				return nil
			}
			time.Sleep(2 * time.Millisecond)
			continue
		}
		if !h.handOver(rctx, c) {
			return nil
		}
	}
	return nil
}

// due pops the client whose wake is earliest if it has fallen due by now; idle says that no
// client will fall due again (before the end, when ending).
func (h *harness) due(now time.Duration, ending bool) (c *simClient, idle bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.wakes.Len() > 0 && h.wakes[0].wake <= now {
		c = heap.Pop(&h.wakes).(*simClient)
		h.simLag = max(h.simLag, now-c.wake)
	}
	return c, h.idleLocked(now, ending)
}

func (h *harness) idleLocked(now time.Duration, ending bool) bool {
	return h.enrolPending() == 0 && (h.wakes.Len() == 0 || ending && h.wakes[0].wake > now)
}

// drained waits for the reports in flight (their clients may wake again) and says whether
// the dispatcher is still idle.
func (h *harness) drained(now time.Duration, ending bool) bool {
	h.inFlight.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.idleLocked(now, ending)
}

// handOver gives c to a worker, at the pacer's rate once the client is enrolled; false when
// the run is over.
func (h *harness) handOver(ctx context.Context, c *simClient) bool {
	if h.pace != nil && c.enrolled {
		if err := h.pace.limiter.Wait(ctx); err != nil {
			return false
		}
	}
	h.inFlight.Add(1)
	h.stats.inFlight.Add(1)
	select {
	case h.work <- c:
		h.lastSend = time.Now()
	case <-ctx.Done():
		h.stats.inFlight.Add(-1)
		h.inFlight.Done()
	}
	return true
}

// patchTuesday imports the scenario's drop of updates (catalog, then its update list) once
// simulated time reaches it.
func (h *harness) patchTuesday(ctx context.Context, now time.Duration) error {
	p := h.sc.PatchTuesday
	if p == nil || h.stats.dropDone.Load() || now < p.At.D() {
		return nil
	}
	if err := h.site.importRef(ctx, schema.RefCatalog, h.drop[:len(h.drop)-1]); err != nil {
		return err
	}
	if err := h.site.importRef(ctx, schema.RefUpdateLists, h.drop[len(h.drop)-1:]); err != nil {
		return err
	}
	h.stats.dropDone.Store(true)
	h.out.logf("Patch Tuesday: %d updates synchronised at sim %s", p.Updates, now.Truncate(time.Minute))
	return nil
}

// sweep begins a rate sweep once the site is ready for it, and moves to the next step once
// the one in force has been held for Scenario.Step; true when the last step is over.
func (h *harness) sweep() (over bool) {
	p := h.pace
	if p == nil {
		return false
	}
	if !h.stats.sweeping.Load() {
		// The sweep starts once every client's first scan is in and its backlog has
		// drained to about a second of the first rate: before, the steps would measure
		// the storm of first scans.
		if h.stats.firsts.Load() == int64(h.sc.Clients) && h.stats.lastLag.Load() <= int64(p.rates[0]) && len(h.timeline()) > 0 {
			h.stats.sweeping.Store(true)
			h.out.logf("rate sweep starts at %.0fs", time.Since(h.begin).Seconds())
		}
		p.stepStart = time.Now()
	}
	if len(p.rates) < 2 || time.Since(p.stepStart) < h.sc.Step.D() {
		return false
	}
	h.res.Steps = append(h.res.Steps, sweepStep(h.timeline(), p.rates[p.step], p.lagStart))
	p.step++
	if p.step == len(p.rates) {
		return true
	}
	p.limiter.SetLimit(timerate.Limit(p.rates[p.step]))
	p.limiter.SetBurst(burst(p.rates[p.step]))
	p.stepStart = time.Now()
	if tl := h.timeline(); len(tl) > 0 {
		p.lagStart = tl[len(tl)-1].LagRecords
	}
	return false
}

// endSweep summarises the step in force when the run ended before the sweep did.
func (h *harness) endSweep() {
	if p := h.pace; p != nil && len(p.rates) > 1 && p.step < len(p.rates) {
		h.res.Steps = append(h.res.Steps, sweepStep(h.timeline(), p.rates[p.step], p.lagStart))
	}
}

// startSampler samples the site once a second into the timeline, showing each sample as the
// status line, until the returned stop is called (it waits for a sample under way).
func (h *harness) startSampler(ctx context.Context) (stop func()) {
	sm := newSampler(h.site, h.cfg.BrokerPID)
	if h.hier != nil {
		sm.rateSites = h.hier.primaries // the clients enrol at the primaries
	}
	return EverySecond(func() { h.sample(ctx, sm) }, nil)
}

// sample takes one Sample: the harness's counters and state, then the site's.
func (h *harness) sample(ctx context.Context, sm *sampler) {
	paused, inFlight := h.clock.isPaused(), h.stats.inFlight.Load()
	enrolled, refused := h.enrolCounts() // with the other counters, before the site's metrics are read
	s := sm.sample(ctx, time.Since(h.begin), h.clock.now(), h.stats.acked.Load())
	s.Reports = h.stats.reports.Load()
	s.InFlight = inFlight
	s.CheckpointPause = paused
	if h.stats.sweeping.Load() {
		s.Rate = float64(h.pace.limiter.Limit())
	}
	s.BacklogSecs = backlogSeconds(s)
	var prev *Sample
	if tl := h.timeline(); len(tl) > 0 {
		prev = &tl[len(tl)-1]
	}
	h.sampleEnrolment(&s, prev, enrolled, refused)
	h.stats.lastLag.Store(s.LagRecords)
	if h.phased != nil {
		h.phased.sample(ctx, s.At, s.SimTime)
	}
	h.tlMu.Lock()
	h.res.Timeline = append(h.res.Timeline, s)
	h.tlMu.Unlock()
	if h.wave != nil {
		h.out.status("%6.0fs  enrolled %8d  (%5.0f/s, 429s %6.0f/s)  acked %10d  folded %10d  lag %7d  backlog %6.1fs   ",
			s.At.Seconds(), s.Enrolled, s.EnrolPerS, s.RefusedPerS, s.Acked, s.Folded, s.LagRecords, nanZero(s.BacklogSecs))
		return
	}
	h.out.status("%6.0fs  sim %-9s acked %11d  folded %11d  lag %8d  p99 %6.2fs  site rss %5d MiB   ",
		s.At.Seconds(), s.SimTime.Truncate(time.Minute), s.Acked, s.Folded, s.LagRecords, nanZero(s.P99), s.SiteRSS>>20)
}

// timeline returns the samples so far (appended to, never changed).
func (h *harness) timeline() Timeline {
	h.tlMu.Lock()
	defer h.tlMu.Unlock()
	return h.res.Timeline
}
