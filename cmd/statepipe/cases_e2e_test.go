package main

// Data-driven rule cases: projector/fold/testdata/reports/*.json hold reference data and
// reports in, and report answers out (a subset of each answer's JSON), for the folding rules
// that live at report level (Not-required inference, Unknown, expired cleanup, full vs delta,
// targeted-but-silent clients, resync). Add a file for every bug.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

type reportCase struct {
	Rule           string                       `json:"rule"`
	ExpiredCleanup string                       `json:"expired_cleanup"`
	ResyncAfter    string                       `json:"resync_after"`
	Reference      map[string][]json.RawMessage `json:"reference"`
	Reports        []schema.Report              `json:"reports"`
	Queries        []struct {
		Report string          `json:"report"`
		Want   json.RawMessage `json:"want"`
	} `json:"queries"`
	ExpectResync   []string `json:"expect_resync"`
	ExpectNoResync []string `json:"expect_no_resync"`
}

func TestReportRuleCases(t *testing.T) {
	files, err := filepath.Glob("../../projector/fold/testdata/reports/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no report cases: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c reportCase
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatalf("bad case file: %v", err)
			}
			s := startSite(t, siteOpts{tune: func(rc *runConfig) {
				if c.ExpiredCleanup != "" {
					rc.ExpiredCleanup, _ = time.ParseDuration(c.ExpiredCleanup)
				}
				if c.ResyncAfter != "" {
					rc.Projector.ResyncAfter, _ = time.ParseDuration(c.ResyncAfter)
				}
			}})
			for _, kind := range schema.RefKinds {
				var lines []string
				for _, l := range c.Reference[string(kind)] {
					lines = append(lines, string(l))
				}
				if len(lines) > 0 {
					s.importRef(string(kind), lines...)
				}
			}
			ctx := context.Background()
			last := map[string]uint64{}
			for i := range c.Reports {
				r := &c.Reports[i]
				r.Site = s.code
				if _, err := s.client(r.Client).Send(ctx, r); err != nil {
					t.Fatalf("report %d: %v", i, err)
				}
				for _, m := range r.Messages {
					last[r.Client] = max(last[r.Client], m.Serial)
				}
			}
			for _, q := range c.Queries {
				var want any
				_ = json.Unmarshal(q.Want, &want)
				eventually(t, func() string {
					var got any
					if code := s.get("/v1/reports/"+q.Report, &got); code != 200 {
						return fmt.Sprintf("%s: status %d", q.Report, code)
					}
					if d := subset(want, got, ""); d != "" {
						return fmt.Sprintf("%s (%s): %s", q.Report, c.Rule, d)
					}
					return ""
				})
			}
			heartbeat := func(client string) bool {
				last[client]++
				ack, err := s.client(client).Send(ctx, &schema.Report{V: 1, Client: client, Site: s.code,
					Messages: []schema.StateMessage{{Serial: last[client], Time: 1, TopicType: schema.TopicHeartbeat}}})
				if err != nil {
					t.Fatal(err)
				}
				return ack.Resync
			}
			for _, client := range c.ExpectResync {
				eventually(t, func() string {
					if !heartbeat(client) {
						return client + " was never asked to resync (" + c.Rule + ")"
					}
					return ""
				})
			}
			for _, client := range c.ExpectNoResync {
				if heartbeat(client) {
					t.Errorf("%s was asked to resync without a gap", client)
				}
			}
		})
	}
}

// subset returns "" when every field of want is in got with the same value (arrays
// element-wise and of the same length), or where they first differ.
func subset(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %v", path, got)
		}
		for k, v := range w {
			if d := subset(v, g[k], path+"."+k); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: want %d elements, got %v", path, len(w), got)
		}
		for i := range w {
			if d := subset(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	default:
		if !reflect.DeepEqual(want, got) {
			return fmt.Sprintf("%s: want %v, got %v", path, want, got)
		}
	}
	return ""
}
