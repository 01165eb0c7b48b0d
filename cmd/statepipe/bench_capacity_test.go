package main

import (
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/bench"
)

// The capacity answer is in real-time clients (simulated × time_scale), and says when the
// largest count tried held (no limit found) rather than naming a failed count never tried.
func TestCapacityReportCountsRealTimeClients(t *testing.T) {
	sc := &bench.Scenario{Name: "pt", TimeScale: 120}
	md, answer := capacityReport(sc, 30*time.Second, []bench.CapacityPoint{{Clients: 2000, BacklogSeconds: 9, OK: true}, {Clients: 4000, BacklogSeconds: 40}}, 2000, 4000, 1000)
	if !strings.Contains(answer, "240000 real-time clients (2000 simulated at 120×)") || !strings.Contains(md, "| 4000 | 480000 | 40.0 s | false |") ||
		!strings.Contains(md, "did not hold") {
		t.Errorf("answer %q\n%s", answer, md)
	}
	md, answer = capacityReport(sc, 30*time.Second, []bench.CapacityPoint{{Clients: 25000, BacklogSeconds: 9.9, OK: true}}, 25000, 0, 1000)
	if !strings.Contains(answer, "at least 3000000 real-time clients") || strings.Contains(md, "did not hold") {
		t.Errorf("no limit found: answer %q\n%s", answer, md)
	}
}
