package main

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/schema"
)

// The decider writes the generated collections and list only when they are missing or differ
// from what the store holds, every record vouched for ref.<site>, and a release once: nothing
// while the target collection is unknown.
func TestPhaseDeciderWritesWhatDiffersOnly(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	d := newPhaseDecider(phaseDeciderConfig{Site: "P01", Topic: "ref.P01", Key: key, Now: func() time.Time { return now }}, nil)
	dep := phasedDeployment{Deployment: schema.Deployment{ID: "D", Name: "Nov", Updates: []string{"U1", "U2"}, Collection: "all", Start: now.Add(-time.Hour), Site: "P01",
		Phases: []schema.Phase{{Name: "pilot", Collection: "pilot"}, {Name: "rest"}}},
		plans: []pacing.PhasePlan{{Name: "pilot", Collection: "pilot", SuccessPct: 95}, {Name: "rest", SuccessPct: 95}}}
	st := &phaseState{collections: map[string]schema.Collection{"pilot": {ID: "pilot", Members: []string{"a"}}},
		lists: map[string]schema.UpdateList{}, releases: map[string]map[int]schema.PhaseRelease{}, compliant: map[string]int64{},
		watermarks: []pacing.SiteWatermark{{Site: "P01", Watermark: now}}}
	a, recs := d.decide(dep, st, now, true)
	if len(recs) != 0 || !strings.Contains(a.Phases[0].Reason, "target collection all") {
		t.Fatalf("with the target unknown: %d records, %+v", len(recs), a.Phases)
	}
	st.collections["all"] = schema.Collection{ID: "all", Members: []string{"b", "a", "c"}}
	_, recs = d.decide(dep, st, now, true)
	var keys []string
	for _, r := range recs {
		keys = append(keys, string(r.Key))
		if err := schema.VerifyVouch([]ed25519.PublicKey{pub}, "ref.P01", r.Key, r.Value, schema.HeaderValue(r.Headers, schema.HeaderVouch), 0); err != nil {
			t.Errorf("%s: %v", r.Key, err)
		}
		if kind, id, _ := strings.Cut(string(r.Key), "/"); kind == "collections" {
			var c schema.Collection
			_ = json.Unmarshal(r.Value, &c)
			st.collections[id] = c
		} else if kind == "lists" {
			var l schema.UpdateList
			_ = json.Unmarshal(r.Value, &l)
			st.lists[id] = l
		} else {
			var rel schema.PhaseRelease
			_ = json.Unmarshal(r.Value, &rel)
			st.releases["D"] = map[int]schema.PhaseRelease{rel.Phase: rel}
		}
	}
	if strings.Join(keys, " ") != "collections/D~phase-1 collections/D~phase-2 lists/D~updates phases/D~1" {
		t.Fatalf("records %v", keys)
	}
	if m := st.collections["D~phase-2"].Members; strings.Join(m, ",") != "b,c" || st.collections["D~phase-1"].Name != "Nov: phase 1 (pilot)" {
		t.Errorf("generated %+v", st.collections)
	}
	// Written and folded: nothing to write again, however often it decides.
	a, recs = d.decide(dep, st, now.Add(time.Second), true)
	if len(recs) != 0 || a.Phases[0].State != pacing.PhaseReleased || a.Phases[1].State != pacing.PhaseWaiting {
		t.Errorf("again: %d records, %+v", len(recs), a.Phases)
	}
	// A new member of the target: its phase's collection is written again, and only it.
	st.collections["all"] = schema.Collection{ID: "all", Members: []string{"a", "b", "c", "d"}}
	if _, recs = d.decide(dep, st, now.Add(2*time.Second), true); len(recs) != 1 || string(recs[0].Key) != "collections/D~phase-2" {
		t.Errorf("after a member joined: %d records", len(recs))
	}
	// The status and the metric.
	d.publish(map[string]*phasesAnswer{"D": a})
	if d.decisions["D"] != a || len(d.labels) != 2 {
		t.Errorf("published %v", d.labels)
	}
	d.publish(map[string]*phasesAnswer{})
	if len(d.labels) != 0 {
		t.Errorf("labels of a deployment no longer decided stay: %v", d.labels)
	}
}
