package bench

import (
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// The simulator's truth must be what its messages say: fold every message it generates with
// the plain rules (greatest serial wins per key, full reports replace) and compare with the
// expectations the oracle draws from the truth. Without this, an oracle bug would hide a site
// bug, or cry wolf.
func TestSimulatorTruthIsWhatItsMessagesSay(t *testing.T) {
	for _, every := range []time.Duration{0, 15 * time.Minute} {
		t.Run("report every "+every.String(), func(t *testing.T) { testSimulatorTruth(t, every) })
	}
}

func testSimulatorTruth(t *testing.T, every time.Duration) {
	sc, err := LoadScenario("scenarios/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Clients = 300
	sc.Behaviour.ReportEvery = Duration(every)
	w := newWorld(sc, time.Now().Add(-sc.Duration.D()))
	type key struct {
		client string
		tt     schema.TopicType
		topic  string
	}
	type val struct {
		state int32
		err   int32
	}
	live := map[key]val{}
	lastOK := map[string]int64{}
	// Every client acts whenever it wakes, through the whole simulated span.
	reports := 0
	for _, c := range w.clients {
		for c.wake >= 0 && c.wake < sc.Duration.D() {
			if every > 0 && c.enrolled && (c.wake-c.phase)%every != 0 {
				t.Fatalf("client %s woke at %v, not one of its report times (%v + k × %v)", c.id, c.wake, c.phase, every)
			}
			msgs, full := w.report(c, c.wake)
			if len(msgs) > 0 {
				reports++
			}
			if full {
				for k := range live {
					if k.client == c.id {
						delete(live, k)
					}
				}
			}
			for _, m := range msgs {
				if m.TopicType == schema.TopicScan && m.State == schema.ScanCompleted {
					lastOK[c.id] = m.Time
				}
				live[key{c.id, m.TopicType, m.TopicID}] = val{m.State, m.Error}
			}
			if !c.enrolled {
				t.Fatalf("client %s: its first report did not enrol it", c.id)
			}
			c.wake = c.nextWake(every)
		}
	}
	t.Logf("%d reports", reports)
	if n := int64(len(live)); n != w.liveKeys() {
		t.Errorf("live keys: messages say %d, truth says %d", n, w.liveKeys())
	}
	for d, sd := range w.deps {
		want := w.expectDeployment(d)
		got := map[int]int64{}
		for i, c := range w.clients {
			if sd.members[i] {
				got[int(live[key{c.id, schema.TopicDeploymentEnforcement, sd.ID}].state)]++
			}
		}
		for s, n := range want {
			if got[s] != n {
				t.Errorf("deployment %s state %d: messages say %d, truth %d", sd.ID, s, got[s], n)
			}
		}
		if len(want) < 3 {
			t.Errorf("deployment %s: only states %v: the walk did not run", sd.ID, want)
		}
	}
	errs := map[int32]map[string]bool{}
	for k, v := range live {
		if (k.tt == schema.TopicUpdateEnforcement || k.tt == schema.TopicDeploymentEnforcement) && v.err != 0 {
			if errs[v.err] == nil {
				errs[v.err] = map[string]bool{}
			}
			errs[v.err][k.client] = true
		}
	}
	want := w.expectErrors()
	if len(want) == 0 || len(errs) != len(want) {
		t.Errorf("errors: messages say %d codes, truth %d", len(errs), len(want))
	}
	for e, n := range want {
		if int64(len(errs[e])) != n {
			t.Errorf("error 0x%08X: messages say %d machines, truth %d", uint32(e), len(errs[e]), n)
		}
	}
	list := make([]int32, sc.List)
	for i := range list {
		list[i] = int32(i)
	}
	wantC, _ := w.expectCompliance(list)
	for _, u := range list {
		var got [4]int64
		for _, c := range w.clients {
			v, ok := live[key{c.id, schema.TopicUpdateCompliance, w.updates[u]}]
			switch {
			case ok && v.state == schema.ComplianceInstalled:
				got[0]++
			case ok && v.state == schema.ComplianceRequired:
				got[1]++
			case ok && v.state == schema.ComplianceNotRequired || lastOK[c.id] > w.firstSynced[u]:
				got[2]++
			default:
				got[3]++
			}
		}
		if got != wantC[w.updates[u]] {
			t.Errorf("compliance %s: messages say %v, truth %v", w.updates[u], got, wantC[w.updates[u]])
		}
	}
}
