package ingest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// calendar books the moment each refused new client should come back, so that a wave of
// clients waiting to enrol returns about as fast as the site admits them, rather than all at
// once every second (a Retry-After of the wait for the next token: "1") or long after the site
// could take them (a wide random spread). Each whole second ahead holds at most perSecond
// bookings; a refusal takes the first second with room, and its Retry-After is that second
// plus a random part of it. Seconds are booked for twice the rate being paced, so a rate that
// rises while clients wait is met by them; those who find no token then are booked again.
type calendar struct {
	mu    sync.Mutex
	start int64 // the Unix second of slots[0]
	slots []int // bookings per second, a ring of len(slots) seconds from start
}

// calendarHorizon is how far ahead the calendar books. A refusal that finds every second up to
// it full is sent to a random second of its second half (and is likely refused and booked
// again then): booking further would leave clients waiting long after a rate that rises had
// room for them — a wave's first flood, booked at its starting rate, would return minutes
// after the site could take it. So a pool of N waiting clients retries about N / 45 times a
// second at most (100,000: about 2,200 a second).
const calendarHorizon = 60

func newCalendar() *calendar { return &calendar{slots: make([]int, calendarHorizon)} }

// book returns the wait before a refused client should come back, booking its second; rate is
// the admission rate now (per second).
func (c *calendar) book(now time.Time, rate float64) time.Duration {
	perSecond := max(int(2*rate+0.5), 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	sec := now.Unix()
	if shift := sec - c.start; shift > 0 {
		// Forget the seconds gone by.
		if shift >= int64(len(c.slots)) {
			clear(c.slots)
		} else {
			for i := int64(0); i < shift; i++ {
				c.slots[(c.start+i)%int64(len(c.slots))] = 0
			}
		}
		c.start = sec
	}
	k := int64(1)
	for ; k < int64(len(c.slots)); k++ {
		if c.slots[(sec+k)%int64(len(c.slots))] < perSecond {
			break
		}
	}
	if k == int64(len(c.slots)) {
		half := int64(len(c.slots)) / 2
		k = half + rand.Int64N(int64(len(c.slots))-half)
	}
	c.slots[(sec+k)%int64(len(c.slots))]++
	// The booked second, counted from now: the rest of this second, k-1 whole ones, and a
	// random moment of the booked one.
	rest := time.Second - time.Duration(now.Nanosecond())
	return rest + time.Duration(k-1)*time.Second + time.Duration(rand.Int64N(int64(time.Second)))
}

// waiting counts the bookings still ahead of now: clients told to come back.
func (c *calendar) waiting(now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	sec, n := now.Unix(), int64(0)
	for k := int64(1); k < int64(len(c.slots)); k++ {
		if t := sec + k; t-c.start < int64(len(c.slots)) {
			n += int64(c.slots[t%int64(len(c.slots))])
		}
	}
	return n
}
