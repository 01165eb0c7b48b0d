package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/statepipe/statepipe/report"
)

// The harness reads the site's own Prometheus metrics, as an operator's Prometheus would.

// metrics fetches and parses the site's /metrics.
func (s *harnessSite) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// sum adds every sample of a counter or gauge family (0 when absent).
func sum(mf map[string]*dto.MetricFamily, name string) float64 {
	f := mf[name]
	if f == nil {
		return 0
	}
	var s float64
	for _, m := range f.GetMetric() {
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		}
	}
	return s
}

// histogram is a cumulative histogram: upper bounds and counts.
type histogram struct {
	le    []float64
	count []float64
}

func histogramOf(mf map[string]*dto.MetricFamily, name string) histogram {
	var h histogram
	f := mf[name]
	if f == nil {
		return h
	}
	for _, m := range f.GetMetric() {
		hh := m.GetHistogram()
		if hh == nil {
			continue
		}
		for i, b := range hh.GetBucket() {
			if i >= len(h.le) {
				h.le = append(h.le, b.GetUpperBound())
				h.count = append(h.count, 0)
			}
			h.count[i] += float64(b.GetCumulativeCount())
		}
	}
	return h
}

// minus returns h − o (the observations between two readings).
func (h histogram) minus(o histogram) histogram {
	d := histogram{le: h.le, count: slices.Clone(h.count)}
	for i := range d.count {
		if i < len(o.count) {
			d.count[i] -= o.count[i]
		}
	}
	return d
}

// quantile estimates the q-quantile by linear interpolation within its bucket, as
// Prometheus's histogram_quantile does; NaN without observations.
func (h histogram) quantile(q float64) float64 {
	if len(h.count) == 0 || h.count[len(h.count)-1] == 0 {
		return math.NaN()
	}
	total := h.count[len(h.count)-1]
	rank := q * total
	for i, c := range h.count {
		if c >= rank {
			lo, below := 0.0, 0.0
			if i > 0 {
				lo, below = h.le[i-1], h.count[i-1]
			}
			hi := h.le[i]
			if math.IsInf(hi, 1) {
				return lo
			}
			if c == below {
				return hi
			}
			return lo + (hi-lo)*(rank-below)/(c-below)
		}
	}
	return h.le[len(h.le)-1]
}

// histogramSum adds the sums of every series of a histogram family (0 when absent).
func histogramSum(mf map[string]*dto.MetricFamily, name string) float64 {
	var s float64
	if f := mf[name]; f != nil {
		for _, m := range f.GetMetric() {
			s += m.GetHistogram().GetSampleSum()
		}
	}
	return s
}

// projectorTotals reads the site's projector counters once.
func (s *harnessSite) projectorTotals(ctx context.Context) (projectorTotals, error) {
	mf, err := s.metrics(ctx)
	if err != nil {
		return projectorTotals{}, err
	}
	return projectorTotals{
		visible:       histogramOf(mf, "statepipe_projector_visible_delay_seconds"),
		messages:      sum(mf, "statepipe_projector_messages_total"),
		insertSeconds: histogramSum(mf, "statepipe_projector_insert_duration_seconds"),
	}, nil
}

// sampler takes one Sample a second.
type sampler struct {
	site      *harnessSite
	brokerPID int
	rateSites []string // the sites whose pacing rates add up to the run's (nil: every site)
	last      histogram
	n         int
}

func newSampler(s *harnessSite, brokerPID int) *sampler {
	return &sampler{site: s, brokerPID: brokerPID}
}

func (sm *sampler) sample(ctx context.Context, at, sim time.Duration, acked int64) Sample {
	s := Sample{At: at, SimTime: sim, P50: math.NaN(), P90: math.NaN(), P99: math.NaN(), CompliantPct: math.NaN(), Acked: acked}
	if mf, err := sm.site.metrics(ctx); err == nil {
		s.Folded = int64(sum(mf, "statepipe_projector_messages_total"))
		s.FoldedRecords = int64(sum(mf, "statepipe_projector_records_total"))
		s.LagRecords = int64(sum(mf, "statepipe_projector_lag_records"))
		samplePacing(mf, &s, sm.rateSites)
		h := histogramOf(mf, "statepipe_projector_visible_delay_seconds")
		d := h.minus(sm.last)
		sm.last = h
		s.P50, s.P90, s.P99 = d.quantile(.5), d.quantile(.9), d.quantile(.99)
	}
	s.SiteRSS = ProcStatus(sm.site.pid(), "VmRSS")
	s.HarnessRSS = ProcStatus(os.Getpid(), "VmRSS")
	s.BrokerRSS = ProcStatus(sm.brokerPID, "VmRSS")
	// The checked list's compliance — the mean over its updates of the share of clients
	// Installed or Not required — every fifth sample (it costs the site a query).
	if sm.n%5 == 0 {
		var c report.Compliance
		if err := sm.site.get(ctx, "/v1/reports/compliance?list="+checkedList, &c); err == nil && len(c.Updates) > 0 {
			var pct float64
			for _, u := range c.Updates {
				pct += u.CompliantPct
			}
			s.CompliantPct = pct / float64(len(c.Updates))
		}
	}
	sm.n++
	return s
}

// Machine describes this machine for results: CPU model, cores and memory.
func Machine() string {
	model := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %.1f GiB, %s/%s", model, runtime.NumCPU(), float64(ProcMeminfo("MemTotal"))/(1<<30), runtime.GOOS, runtime.GOARCH)
}

// freePort returns a TCP port free on the loopback interface now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
