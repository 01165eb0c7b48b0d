package ingest

import (
	"testing"
	"time"
)

// A wave of refusals is booked second by second at twice the rate, so the clients come back
// about as fast as they can be admitted; seconds gone by are forgotten.
func TestCalendarBooksTheWaveSecondBySecond(t *testing.T) {
	c := newCalendar()
	now := time.Unix(1_800_000_000, 250_000_000)
	per := map[int64]int{}
	for range 1000 {
		wait := c.book(now, 50) // 100 a second
		if wait <= 0 {
			t.Fatalf("a booking of %s", wait)
		}
		per[now.Add(wait).Unix()-now.Unix()]++
	}
	if len(per) != 10 {
		t.Errorf("1,000 refusals at 50/s went to %d seconds, want 10 (100 each): %v", len(per), per)
	}
	for s, n := range per {
		if s < 1 || s > 10 || n != 100 {
			t.Errorf("second +%d holds %d bookings, want 100 in each of +1 … +10", s, n)
		}
	}
	if n := c.waiting(now); n != 1000 {
		t.Errorf("waiting %d, want 1000", n)
	}
	later := now.Add(5 * time.Second)
	if n := c.waiting(later); n != 500 {
		t.Errorf("5 s later waiting %d, want 500", n)
	}
	if wait := c.book(later, 50); later.Add(wait).Unix()-now.Unix() != 11 {
		t.Errorf("a refusal 5 s later came back at +%d, want +11 (after the 1,000 booked)", later.Add(wait).Unix()-now.Unix())
	}
	if wait := c.book(now.Add(2*time.Hour), 50); wait > 2*time.Second {
		t.Errorf("an hour after the wave a refusal waits %s, want about a second", wait)
	}
	// A flood beyond the horizon is sent to its second half, not booked further.
	flood := newCalendar()
	for range 100_000 {
		if wait := flood.book(now, 50); wait > calendarHorizon*time.Second || wait <= 0 {
			t.Fatalf("a refusal in a flood waits %s, want at most the %d s horizon", wait, calendarHorizon)
		}
	}
}
