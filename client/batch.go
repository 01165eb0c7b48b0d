package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/statepipe/statepipe/schema"
)

const (
	// MaxBatch bounds the messages of one report Flush sends: a longer pending batch goes as
	// several reports, in order (the site accepts up to 50,000 messages and 8 MiB a report).
	MaxBatch = 10_000
	// maxReportInterval bounds the interval a site may ask for: a larger one is taken as it.
	maxReportInterval = 24 * time.Hour
	// exitFlushTimeout bounds Run's last flush, once its context is done.
	exitFlushTimeout = 10 * time.Second
)

// Queue adds state messages to the pending batch, which Flush (or Run, every ReportInterval)
// sends as one report. Serials are assigned when the batch is sent, in queue order; a message
// without a time gets the time it was queued. The messages are copied. Queue never blocks on
// the network: it is safe to call while Run, Flush or Report are sending.
func (c *Client) Queue(msgs ...schema.StateMessage) {
	now := time.Now().UnixMilli()
	c.qMu.Lock()
	defer c.qMu.Unlock()
	for _, m := range msgs {
		if m.Time == 0 {
			m.Time = now
		}
		c.queue = append(c.queue, m)
	}
}

// Pending returns how many state messages wait to be sent: queued, or in a batch a failed
// flush kept.
func (c *Client) Pending() int {
	c.qMu.Lock()
	defer c.qMu.Unlock()
	n := len(c.queue)
	for _, r := range c.unsent {
		n += len(r.Messages)
	}
	return n
}

// Flush sends the pending batch — what was queued when it began — as one report (several of
// at most MaxBatch messages when it is longer); with nothing pending it sends nothing. A batch
// that could not be sent (network, 5xx, 429, an unrenewable credential, ctx) is kept, serials
// and all, and goes first at the next Flush or Report: a report the site accepted without
// the client hearing is folded once. A batch the site refused for good (400, 409, 415) is
// dropped, and the error says so: its serials become a gap, which the site heals by asking
// for a resync (OnResync). When an acknowledgement asks for a resync and OnResync is set,
// Flush answers it before it returns.
func (c *Client) Flush(ctx context.Context) error {
	defer c.notifyReleased()
	c.mu.Lock()
	defer c.mu.Unlock()
	resync, dropped, err := c.flushLocked(ctx)
	if err == nil && resync && c.cfg.OnResync != nil {
		err = c.resync(ctx)
	}
	return errors.Join(dropped, err)
}

// flushLocked sends the kept batches, then what is queued now, in reports of at most
// MaxBatch messages, numbering each as it comes to be sent. err is the failure that stopped
// it (the batch is kept); dropped are the batches the site refused for good. Called with mu.
func (c *Client) flushLocked(ctx context.Context) (resync bool, dropped, err error) {
	c.qMu.Lock()
	defer c.qMu.Unlock()
	todo := len(c.queue) // messages queued from now on wait for the next flush
	for {
		if len(c.unsent) == 0 && todo > 0 {
			n := min(todo, MaxBatch)
			msgs := c.queue[:n:n]
			if c.queue = c.queue[n:]; len(c.queue) == 0 {
				c.queue = nil
			}
			todo -= n
			c.number(msgs)
			c.unsent = append(c.unsent, &schema.Report{V: schema.Version, Client: c.cfg.ClientID, Site: c.cfg.Site, Messages: msgs})
		}
		if len(c.unsent) == 0 {
			return resync, dropped, nil
		}
		rep := c.unsent[0]
		c.qMu.Unlock()
		ack, err := c.send(ctx, rep)
		c.qMu.Lock()
		var apiErr *APIError
		switch {
		case err == nil:
			c.unsent = c.unsent[1:]
			resync = resync || ack.Resync
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge && len(rep.Messages) > 1:
			// Too large for the site: the halves go as two reports, with the same serials.
			half := len(rep.Messages) / 2
			a, b := *rep, *rep
			a.Messages, b.Messages = rep.Messages[:half:half], rep.Messages[half:]
			c.unsent = append([]*schema.Report{&a, &b}, c.unsent[1:]...)
		case apiErr != nil && refusedForGood(apiErr):
			c.unsent = c.unsent[1:]
			dropped = errors.Join(dropped, fmt.Errorf("dropped %d queued state messages (serials %d–%d) the site refused: %w",
				len(rep.Messages), rep.Messages[0].Serial, rep.Messages[len(rep.Messages)-1].Serial, err))
		default:
			return resync, dropped, err
		}
	}
}

// refusedForGood reports whether the site refused a report's content (sending it again as it
// is cannot succeed), as opposed to who sent it or when.
func refusedForGood(e *APIError) bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return true
	}
	return false
}

// ReportInterval returns how long to batch state messages before the next report: the
// interval the site's last acknowledgement asked for (capped at 24 h), or
// Config.ReportInterval before any did and while the site does not pace (it answered 0).
func (c *Client) ReportInterval() time.Duration {
	c.paceMu.Lock()
	defer c.paceMu.Unlock()
	if c.interval > 0 {
		return c.interval
	}
	return c.cfg.ReportInterval
}

// Released returns the phased deployments the site's last acknowledgement listed as released
// to this client (sorted; a copy). Deployments without phases are never listed: they are
// released at their start.
func (c *Client) Released() []string {
	c.paceMu.Lock()
	defer c.paceMu.Unlock()
	return slices.Clone(c.released)
}

// IsReleased reports whether the site's last acknowledgement listed deployment id as released
// to this client.
func (c *Client) IsReleased(id string) bool {
	c.paceMu.Lock()
	defer c.paceMu.Unlock()
	_, ok := slices.BinarySearch(c.released, id)
	return ok
}

// observe keeps what an acknowledgement says of pacing and released deployments.
func (c *Client) observe(ack *schema.Ack) {
	interval := time.Duration(min(max(ack.ReportInterval, 0), int(maxReportInterval/time.Second))) * time.Second
	released := slices.Compact(slices.Sorted(slices.Values(ack.Released)))
	c.paceMu.Lock()
	defer c.paceMu.Unlock()
	if interval != c.interval {
		c.interval = interval
		select {
		case c.paceChanged <- struct{}{}:
		default:
		}
	}
	if !slices.Equal(released, c.released) {
		c.released = released
		c.relVersion++
	}
}

// notifyReleased tells OnReleased of a change of the released set it has not heard of. The
// public calls that send defer it, so it runs once they let go of the client; a call made
// while another one tells (or from OnReleased itself) leaves the news to that one.
func (c *Client) notifyReleased() {
	if c.cfg.OnReleased == nil {
		return
	}
	for {
		c.paceMu.Lock()
		if c.delivering || c.relDelivered == c.relVersion {
			c.paceMu.Unlock()
			return
		}
		c.delivering, c.relDelivered = true, c.relVersion
		released := slices.Clone(c.released)
		c.paceMu.Unlock()
		func() {
			defer func() {
				c.paceMu.Lock()
				c.delivering = false
				c.paceMu.Unlock()
			}()
			c.cfg.OnReleased(released)
		}()
	}
}

// Run flushes the pending batch every ReportInterval, with ±10 % jitter so a fleet does not
// report in step, until ctx is done; then it flushes once more, for at most 10 s. A new
// interval from the site applies at once to the wait under way. Failed flushes go to
// Config.OnFlushError; their batch waits for the next. Run returns nil when the last flush
// left nothing pending, else its error (the batch is still pending: Flush may try again).
// Call it once per client; Queue, Report and Flush may be called meanwhile.
func (c *Client) Run(ctx context.Context) error {
	for {
		jitter := 0.9 + 0.2*rand.Float64()
		due := func() time.Duration {
			return time.Duration(float64(c.ReportInterval()) * jitter)
		}
		start := time.Now()
		timer := time.NewTimer(due())
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exitFlushTimeout)
				err := c.Flush(fctx)
				cancel()
				return err
			case <-c.paceChanged:
				timer.Reset(time.Until(start.Add(due())))
			case <-timer.C:
				break wait
			}
		}
		if err := c.Flush(ctx); err != nil && ctx.Err() == nil && c.cfg.OnFlushError != nil {
			c.cfg.OnFlushError(err)
		}
	}
}
