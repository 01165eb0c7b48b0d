package ingest

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

func phaseColl(d string, n int, members ...string) Record {
	v, _ := json.Marshal(schema.Collection{ID: schema.PhaseCollectionID(d, n), Members: members})
	return Record{Key: []byte("collections/" + schema.PhaseCollectionID(d, n)), Value: v}
}

func phaseRel(d string, n int) Record {
	v, _ := json.Marshal(schema.PhaseRelease{Deployment: d, Phase: n, Name: fmt.Sprint("phase ", n), ReleasedAt: time.Now()})
	return Record{Key: []byte("phases/" + schema.PhaseReleaseID(d, n)), Value: v}
}

func phasedDep(d string, phases int) Record {
	dep := schema.Deployment{ID: d, Updates: []string{"U"}, Collection: "C"}
	for i := range phases {
		dep.Phases = append(dep.Phases, schema.Phase{Name: fmt.Sprint(i)})
	}
	v, _ := json.Marshal(dep)
	return Record{Key: []byte("deployments/" + d), Value: v}
}

// A client is answered the deployments with a released phase whose generated collection holds
// it, whatever order the records of distinct keys come in.
func TestPhaseBookAnswersReleasedPhasesOnly(t *testing.T) {
	var b PhaseBook
	if b.Released("pc1") != nil {
		t.Fatal("the zero value released something")
	}
	b.Apply(phaseRel("D", 1)) // the release before its collection and deployment
	b.Apply(phaseColl("D", 1, "pc1", "pc2"))
	b.Apply(phaseColl("D", 2, "pc3"))
	b.Apply(phaseColl("E", 1, "pc1"))
	b.Apply(phaseRel("E", 1))
	b.Apply(phasedDep("E", 2))
	if got := b.Released("pc1"); !slices.Equal(got, []string{"E"}) {
		t.Errorf("before D's deployment record: %v, want E only", got)
	}
	b.Apply(phasedDep("D", 3))
	b.Apply(Record{Key: []byte("collections/ring-1"), Value: []byte(`{"id":"ring-1","members":["pc3"]}`)})
	want := map[string][]string{"pc1": {"D", "E"}, "pc2": {"D"}, "pc3": nil, "pc4": nil}
	for c, w := range want {
		if got := b.Released(c); !slices.Equal(got, w) {
			t.Errorf("Released(%s) = %v, want %v", c, got, w)
		}
	}
	b.Apply(phaseColl("D", 1, "pc2")) // pc1 moved out of phase 1 (the target collection changed)
	b.Apply(phaseRel("D", 2))
	for c, w := range map[string][]string{"pc1": {"E"}, "pc2": {"D"}, "pc3": {"D"}} {
		if got := b.Released(c); !slices.Equal(got, w) {
			t.Errorf("after changes: Released(%s) = %v, want %v", c, got, w)
		}
	}
	b.Apply(phasedDep("D", 0))                 // no longer phased: released to everyone, listed for none
	b.Apply(Record{Key: []byte("phases/E~1")}) // a tombstone
	for _, c := range []string{"pc1", "pc2", "pc3"} {
		if got := b.Released(c); got != nil {
			t.Errorf("after D lost its phases and E's release: Released(%s) = %v", c, got)
		}
	}
	b.Apply(Record{Key: []byte("phases/E~x"), Value: []byte(`{}`)})
	b.Apply(Record{Key: []byte("phases/E~2"), Value: []byte(`{"deployment":"F","phase":2}`)})
	if b.Ignored() != 2 {
		t.Errorf("%d records ignored, want the 2 malformed releases", b.Ignored())
	}
}

// With the site's keys, only records the site vouched for are applied: a release forged into
// the topic would make machines enforce a deployment.
func TestPhaseBookAppliesOnlyVouchedRecords(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	b := NewPhaseBook("ref.P01", pub)
	vouch := func(r Record, k ed25519.PrivateKey) Record {
		r.Headers = []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(k, "ref.P01", r.Key, r.Value, 0)}}
		return r
	}
	b.Apply(vouch(phasedDep("D", 2), key))
	b.Apply(vouch(phaseColl("D", 1, "pc1"), key))
	b.Apply(vouch(phaseRel("D", 1), other))
	b.Apply(phaseRel("D", 1))
	if got := b.Released("pc1"); got != nil || b.Ignored() != 2 {
		t.Errorf("unvouched releases applied: %v, %d ignored", got, b.Ignored())
	}
	b.Apply(vouch(phaseRel("D", 1), key))
	if got := b.Released("pc1"); !slices.Equal(got, []string{"D"}) {
		t.Errorf("vouched release: %v", got)
	}
}

func TestPhaseBookConcurrently(t *testing.T) { // run with -race
	var b PhaseBook
	b.Apply(phasedDep("D", 2))
	b.Apply(phaseRel("D", 1))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if i%2 == 0 {
					b.Apply(phaseColl("D", 1, fmt.Sprint("pc", j%7), "pc-x"))
				} else if got := b.Released("pc-x"); got != nil && !slices.Equal(got, []string{"D"}) {
					t.Errorf("Released = %v", got)
				}
			}
		}()
	}
	wg.Wait()
}
