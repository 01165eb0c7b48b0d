package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Oracle is what the site must hold, computed from every report the site acknowledged (200)
// to this program — legitimate load, canary, and any attack report that was accepted — by the
// folding rules of schema/README.md: every distinct (client, serial) once; per key the state
// of the greatest serial; a full report of a type removes the client's keys of that type with
// a serial below its smallest serial.
type Oracle struct {
	mu      sync.Mutex
	clients map[string]*oClient
}

type oKey struct {
	t  schema.TopicType
	id string
}

type oState struct {
	serial uint64
	state  int32
}

type oClient struct {
	serials map[uint64]bool
	keys    map[oKey]oState
	marker  map[schema.TopicType]uint64
}

func newOracle() *Oracle { return &Oracle{clients: map[string]*oClient{}} }

// Apply records an acknowledged report.
func (o *Oracle) Apply(rep *schema.Report) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.clients[rep.Client]
	if c == nil {
		c = &oClient{serials: map[uint64]bool{}, keys: map[oKey]oState{}, marker: map[schema.TopicType]uint64{}}
		o.clients[rep.Client] = c
	}
	minSerial := uint64(1<<64 - 1)
	for _, m := range rep.Messages {
		c.serials[m.Serial] = true
		minSerial = min(minSerial, m.Serial)
		if !m.TopicType.Keyed() {
			continue
		}
		k := oKey{m.TopicType, m.TopicID}
		if cur, ok := c.keys[k]; !ok || m.Serial > cur.serial {
			c.keys[k] = oState{m.Serial, m.State}
		}
	}
	for _, t := range rep.FullTypes {
		c.marker[t] = max(c.marker[t], minSerial)
	}
}

// Messages returns the count of distinct serials per client.
func (o *Oracle) Messages() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for id, c := range o.clients {
		out[id] = len(c.serials)
	}
	return out
}

// Live returns a client's live state of a key, and whether it has one.
func (o *Oracle) Live(client string, t schema.TopicType, id string) (int32, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.clients[client]
	if c == nil {
		return 0, false
	}
	s, ok := c.keys[oKey{t, id}]
	if !ok || s.serial < c.marker[t] {
		return 0, false
	}
	return s.state, true
}

// UpdateCounts are one update's counts in the compliance report.
type UpdateCounts struct {
	Installed   int `json:"installed"`
	Required    int `json:"required"`
	NotRequired int `json:"not_required"`
	Unknown     int `json:"unknown"`
	Total       int `json:"total"`
}

// Compliance returns the compliance counts of every update with a 500 state (no catalog is
// imported, so nothing is inferred): per update the clients whose live 500 state is 3, 2 or
// 1, the others of the clients heard from Unknown.
func (o *Oracle) Compliance() map[string]UpdateCounts {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]UpdateCounts{}
	for _, c := range o.clients {
		for k := range c.keys {
			if k.t == schema.TopicUpdateCompliance {
				out[k.id] = UpdateCounts{}
			}
		}
	}
	total := len(o.clients)
	for u := range out {
		var uc UpdateCounts
		for _, c := range o.clients {
			s, ok := c.keys[oKey{schema.TopicUpdateCompliance, u}]
			if !ok || s.serial < c.marker[schema.TopicUpdateCompliance] {
				continue
			}
			switch s.state {
			case 3:
				uc.Installed++
			case 2:
				uc.Required++
			case 1:
				uc.NotRequired++
			}
		}
		uc.Total = total
		uc.Unknown = total - uc.Installed - uc.Required - uc.NotRequired
		out[u] = uc
	}
	return out
}

// OracleCheck is one comparison of the site with the oracle.
type OracleCheck struct {
	When           string   `json:"when"`
	Equal          bool     `json:"equal"`
	Clients        int      `json:"clients"`
	Messages       int      `json:"messages"`
	Updates        int      `json:"updates"`
	WaitedSeconds  float64  `json:"waited_seconds"`
	Differences    []string `json:"differences,omitempty"`
	SiteMessages   int      `json:"site_messages"`
	OracleMessages int      `json:"oracle_messages"`
}

// siteMessages reads count() of state_messages FINAL per client through /v1/sql.
func (r *Run) siteMessages(ctx context.Context) (map[string]int, error) {
	res, err := r.sql(ctx, r.site.AdminToken, "SELECT client, count() FROM statepipe_p01.state_messages FINAL GROUP BY client ORDER BY client")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, row := range res.Rows {
		if len(row) != 2 {
			return nil, fmt.Errorf("row of %d columns", len(row))
		}
		c, _ := row[0].(string)
		n, err := toInt(row[1])
		if err != nil {
			return nil, err
		}
		out[c] = n
	}
	return out, nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case float64:
		return int(x), nil
	case string: // UInt64 may come quoted
		var n int
		_, err := fmt.Sscan(x, &n)
		return n, err
	case json.Number:
		n, err := x.Int64()
		return int(n), err
	}
	return 0, fmt.Errorf("not a number: %T %v", v, v)
}

// siteCompliance reads /v1/reports/compliance?updates=… (reader token).
func (r *Run) siteCompliance(ctx context.Context, updates []string) (map[string]UpdateCounts, error) {
	out := map[string]UpdateCounts{}
	for i := 0; i < len(updates); i += 500 {
		part := updates[i:min(i+500, len(updates))]
		res := r.get(ctx, r.site.ReaderToken, "/v1/reports/compliance?updates="+url.QueryEscape(strings.Join(part, ",")))
		if res.Err != nil || res.Status != 200 {
			return nil, fmt.Errorf("compliance report: %s %s", res.Key(), clipped(string(res.Body), 300))
		}
		var rep struct {
			Updates []struct {
				UpdateID string `json:"update_id"`
				UpdateCounts
			} `json:"updates"`
		}
		if err := json.Unmarshal(res.Body, &rep); err != nil {
			return nil, err
		}
		for _, u := range rep.Updates {
			out[u.UpdateID] = u.UpdateCounts
		}
	}
	return out, nil
}

// checkOracle compares the site with the oracle until they are equal or wait passes (the
// projector folds within a second or so; a restart restores first). The caller has paused
// the senders, so the oracle does not move meanwhile.
func (r *Run) checkOracle(ctx context.Context, when string, wait time.Duration) OracleCheck {
	start := time.Now()
	var diffs []string
	oc := OracleCheck{When: when}
	for {
		diffs = diffs[:0]
		want := r.oracle.Messages()
		got, err := r.siteMessages(ctx)
		oc.OracleMessages, oc.SiteMessages = 0, 0
		for _, n := range want {
			oc.OracleMessages += n
		}
		for _, n := range got {
			oc.SiteMessages += n
		}
		if err != nil {
			diffs = append(diffs, "state_messages: "+err.Error())
		} else {
			diffs = append(diffs, diffCounts(want, got)...)
		}
		wantC := r.oracle.Compliance()
		updates := make([]string, 0, len(wantC))
		for u := range wantC {
			updates = append(updates, u)
		}
		sort.Strings(updates)
		gotC, err := r.siteCompliance(ctx, updates)
		if err != nil {
			diffs = append(diffs, err.Error())
		} else {
			for _, u := range updates {
				if w, g := wantC[u], gotC[u]; w != g {
					diffs = append(diffs, fmt.Sprintf("compliance %s: oracle %+v, site %+v", u, w, g))
				}
			}
		}
		oc.Clients, oc.Updates = len(want), len(updates)
		oc.Messages = oc.OracleMessages
		if len(diffs) == 0 || time.Since(start) > wait || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	oc.Equal = len(diffs) == 0
	oc.WaitedSeconds = time.Since(start).Seconds()
	if len(diffs) > 30 {
		diffs = append(diffs[:30], fmt.Sprintf("… and %d more", len(diffs)-30))
	}
	oc.Differences = append([]string(nil), diffs...)
	r.logf("oracle check %q: equal=%v clients=%d messages oracle=%d site=%d updates=%d waited %.1fs %v",
		when, oc.Equal, oc.Clients, oc.OracleMessages, oc.SiteMessages, oc.Updates, oc.WaitedSeconds, oc.Differences)
	return oc
}

func diffCounts(want, got map[string]int) []string {
	var d []string
	for c, n := range want {
		if got[c] != n {
			d = append(d, fmt.Sprintf("state_messages FINAL of %q: oracle %d, site %d (%+d)", c, n, got[c], got[c]-n))
		}
	}
	for c, n := range got {
		if _, ok := want[c]; !ok {
			d = append(d, fmt.Sprintf("state_messages FINAL of %q: oracle 0 (never acknowledged), site %d", c, n))
		}
	}
	sort.Strings(d)
	return d
}
