package pacing

import "time"

// minWindow is the minimum of a signal over a sliding window of time, as CoDel takes the
// minimum sojourn time over its interval: a burst that drains within the window never raises
// it, while a backlog that stands for the whole window does. It keeps the candidates for the
// minimum in a monotonic queue (values increasing from the front), so adding is amortised O(1)
// and the minimum is the front.
type minWindow struct {
	span time.Duration
	q    []sample
}

type sample struct {
	at time.Time
	v  float64
}

// add records v at t and returns the minimum over (t − span, t].
func (w *minWindow) add(t time.Time, v float64) float64 {
	for len(w.q) > 0 && w.q[len(w.q)-1].v >= v {
		w.q = w.q[:len(w.q)-1]
	}
	w.q = append(w.q, sample{t, v})
	cut := 0
	for cut < len(w.q)-1 && !w.q[cut].at.After(t.Add(-w.span)) {
		cut++
	}
	if cut > 0 {
		w.q = append(w.q[:0], w.q[cut:]...)
	}
	return w.q[0].v
}

// reset forgets every sample (after a gap in the signal: a minimum over values read before it
// says nothing about now).
func (w *minWindow) reset() { w.q = w.q[:0] }
