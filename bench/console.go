package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// console is where a run says how it is going: a status line rewritten in place once a second
// ("\r"), and whole lines between. A line, and a status line of another kind, first ends the
// status line on screen, so two messages never run together on one line (they did: "… clients
// reportedenrolled 2000 clients"). A console on a nil writer says nothing. It is safe for
// concurrent use; as an io.Writer it writes whole lines.
type console struct {
	mu   sync.Mutex
	w    io.Writer
	open bool // a status line is on screen without its newline
}

func newConsole(w io.Writer) *console { return &console{w: w} }

// status shows line as the status line, replacing the one on screen.
func (c *console) status(format string, a ...any) {
	if c.w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "\r"+format, a...)
	c.open = true
}

// endStatus ends the status line on screen, if there is one, keeping it as it is.
func (c *console) endStatus() {
	if c.w == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked()
}

func (c *console) endLocked() {
	if c.open {
		fmt.Fprintln(c.w)
		c.open = false
	}
}

// logf writes one line (a trailing newline is added when missing).
func (c *console) logf(format string, a ...any) {
	if c.w == nil {
		return
	}
	msg := fmt.Sprintf(format, a...)
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	_, _ = c.Write([]byte(msg))
}

// Write writes p as whole lines, after ending the status line.
func (c *console) Write(p []byte) (int, error) {
	if c.w == nil {
		return len(p), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked()
	return c.w.Write(p)
}

// count shows "<seconds>  <done>/<total> <what>" as the status line once a second until the
// returned stop is called, which shows the final count, ends the line and returns only when
// the line is written.
func (c *console) count(what string, start time.Time, done *atomic.Int64, total int64) (stop func()) {
	if c.w == nil {
		return func() {}
	}
	show := func() { c.status("%6.1fs  %d/%d %s", time.Since(start).Seconds(), done.Load(), total, what) }
	return EverySecond(show, func() { show(); c.endStatus() })
}

// EverySecond calls tick once a second until the returned stop is called, which then calls
// last (when not nil) and returns once it has: the clock of a progress line.
func EverySecond(tick, last func()) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				if last != nil {
					last()
				}
				return
			case <-t.C:
				tick()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-finished
	}
}
