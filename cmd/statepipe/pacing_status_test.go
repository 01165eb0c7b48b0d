package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
)

// The statuses a site's nodes publish, as a process without a pacing controller of its own
// reads them: the parent's worst pressure for the sites below, the backlog verdict for a
// decider of phases. A node is fresh only once its publication time advances here; none
// fresh is missing data (pressure unknown, backlog not OK).
func TestPublishedPacingStatuses(t *testing.T) {
	a := newAboveStatus(kafka.Config{}, "CEN", nil)
	pub := func(node string, at int64, pressure float64, ok bool) {
		v, _ := json.Marshal(pacingPublished{Site: "CEN", Node: node, At: at, Pressure: pressure, BacklogOK: ok})
		a.apply(kafka.Record{Key: []byte("status/" + node), Value: v})
	}
	const stale = 10 * time.Second
	now := time.Now()
	if _, at := a.get(now, stale); !at.IsZero() || a.backlogOK(now, stale) {
		t.Fatal("nothing published: want missing data, backlog not OK")
	}
	pub("n1", 1000, 0.2, true) // read once (a compacted topic's last record, perhaps of a dead node)
	if a.backlogOK(time.Now(), stale) {
		t.Error("a status read once, never advancing, counts as fresh")
	}
	pub("n1", 2000, 0.2, true)
	pub("n2", 1000, 0.1, true)
	pub("n2", 2000, 0.9, true)
	if p, at := a.get(time.Now(), stale); at.IsZero() || p != 0.9 || !a.backlogOK(time.Now(), stale) {
		t.Errorf("two fresh nodes: pressure %v (at %v), backlog OK %v; want 0.9, OK", p, at, a.backlogOK(time.Now(), stale))
	}
	pub("n2", 3000, 1.2, false)
	if a.backlogOK(time.Now(), stale) {
		t.Error("one fresh node over target: want backlog not OK")
	}
	pub("n2", 2500, 0.1, true) // older than the last: ignored
	if a.backlogOK(time.Now(), stale) {
		t.Error("an older status replaced a newer one")
	}
	if a.backlogOK(time.Now().Add(stale+time.Second), stale) {
		t.Error("every node silent past max staleness: want backlog not OK")
	}
	a.apply(kafka.Record{Key: []byte("status/n3"), Value: []byte(`{"at":5000,"pressure":-1}`)})
	a.apply(kafka.Record{Key: []byte("admin"), Value: []byte(`{"at":5000}`)})
	if len(a.nodes) != 2 {
		t.Errorf("nodes %v: a negative pressure or a command taken as a status", a.nodes)
	}
}
