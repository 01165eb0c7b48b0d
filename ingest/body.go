package ingest

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"

	"github.com/statepipe/statepipe/schema"
)

// Reading report bodies. A body is read before its report takes an in-flight slot
// (Config.MaxInFlight), so a client that sends its body slowly holds only what it sent, never
// a slot a whole report needs: 300 clients trickling a byte every 5 s once held every slot and
// every legitimate report was answered 503. What bounds the memory of bodies instead is a byte
// budget (Config.BodyMemoryBytes) charged as buffers grow with the bytes that actually arrived
// and released when the request ends; the pace a body must keep is the node's
// (cmd/statepipe: --http.min-rate after --http.rate-grace), whose expired read deadline this
// handler answers 408.

// DefaultBodyMemoryBytes is the default of Config.BodyMemoryBytes.
const DefaultBodyMemoryBytes = 512 << 20

// minBodyBuffer is the smallest body buffer: what a trickling client holds (and is charged).
const minBodyBuffer = 4 << 10

// bodyBuffers hands out body buffers by capacity class — powers of two from minBodyBuffer,
// the last class capped at the body limit — so a body takes a buffer of about its size: a
// trickling client gets 4 KiB, not the 8 MiB a full scan left in a shared pool.
type bodyBuffers struct {
	max     int
	classes []sync.Pool // class i: capacity min(minBodyBuffer<<i, max)
}

func newBodyBuffers(max int) *bodyBuffers {
	n := 1
	for minBodyBuffer<<(n-1) < max {
		n++
	}
	return &bodyBuffers{max: max, classes: make([]sync.Pool, n)}
}

// class returns the smallest class holding n bytes.
func (p *bodyBuffers) class(n int) int {
	if n <= minBodyBuffer {
		return 0
	}
	return min(bits.Len(uint((n-1)/minBodyBuffer)), len(p.classes)-1)
}

func (p *bodyBuffers) capacity(class int) int { return min(minBodyBuffer<<class, p.max) }

// get returns an empty buffer of the class's capacity.
func (p *bodyBuffers) get(class int) *[]byte {
	if b, ok := p.classes[class].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, p.capacity(class))
	return &b
}

func (p *bodyBuffers) put(b *[]byte) {
	c := p.class(cap(*b))
	if p.capacity(c) != cap(*b) {
		return // not one of ours
	}
	*b = (*b)[:0]
	p.classes[c].Put(b)
}

// body is a report body read into a pooled buffer, and the budget it holds until release.
type body struct {
	buf  *[]byte
	held int64
}

// Bytes returns the body; valid until release.
func (b body) Bytes() []byte { return *b.buf }

// Len returns the body's length.
func (b body) Len() int { return len(*b.buf) }

// bodyBudget bounds the bytes of report bodies held at once.
type bodyBudget struct {
	sem  *semaphore.Weighted
	size int64
	held atomic.Int64 // for the gauge
}

func newBodyBudget(size int64) *bodyBudget {
	return &bodyBudget{sem: semaphore.NewWeighted(size), size: size}
}

func (b *bodyBudget) take(n int64) bool {
	if !b.sem.TryAcquire(n) {
		return false
	}
	b.held.Add(n)
	return true
}

func (b *bodyBudget) give(n int64) {
	b.held.Add(-n)
	b.sem.Release(n)
}

// readBody reads r's body, growing its buffer only as bytes arrive and charging each buffer
// to the budget before it is taken. A body over MaxBodyBytes is 413; a budget used up is 503
// with Retry-After (the client retries, as after any 503); a read deadline the node set
// expiring is 408 and the connection is closed; any other read error is 400.
func (h *Handler) readBody(r *http.Request) (body, *rejection) {
	b := body{buf: h.buffers.get(0)}
	if !h.budget.take(int64(cap(*b.buf))) {
		h.buffers.put(b.buf)
		return body{}, h.bodyMemoryRejection()
	}
	b.held = int64(cap(*b.buf))
	fail := func(rej *rejection) (body, *rejection) {
		h.releaseBody(b)
		return body{}, rej
	}
	var probe [1]byte
	for {
		buf := *b.buf
		dst, probing := buf[len(buf):cap(buf)], false
		if len(dst) == 0 {
			if cap(buf) >= h.buffers.max {
				dst, probing = probe[:], true // full: one byte more is too large
			} else {
				next := h.buffers.class(cap(buf) + 1)
				grown := int64(h.buffers.capacity(next))
				if !h.budget.take(grown) {
					return fail(h.bodyMemoryRejection())
				}
				nb := h.buffers.get(next)
				*nb = append(*nb, buf...)
				h.buffers.put(b.buf)
				h.budget.give(b.held)
				b.buf, b.held = nb, grown
				continue
			}
		}
		n, err := r.Body.Read(dst)
		if probing && n > 0 {
			h.rejected.WithLabelValues("body_too_large").Inc()
			return fail(&rejection{status: http.StatusRequestEntityTooLarge, code: schema.CodeTooLarge, reason: "body_too_large",
				message: fmt.Sprintf("body exceeds the limit of %d bytes", h.cfg.MaxBodyBytes), field: "body"})
		}
		if !probing {
			*b.buf = buf[:len(buf)+n]
		}
		switch {
		case errors.Is(err, io.EOF):
			return b, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			h.rejected.WithLabelValues("slow_body").Inc()
			return fail(&rejection{status: http.StatusRequestTimeout, code: schema.CodeTimeout, reason: "slow_body",
				message: fmt.Sprintf("cannot read body: %v (%d bytes arrived)", err, b.Len()), field: "body"})
		case err != nil:
			return fail(&rejection{status: http.StatusBadRequest, code: schema.CodeMalformed,
				message: "cannot read body: " + err.Error(), field: "body"})
		}
	}
}

func (h *Handler) bodyMemoryRejection() *rejection {
	h.rejected.WithLabelValues("body_memory").Inc()
	return &rejection{status: http.StatusServiceUnavailable, code: schema.CodeUnavailable, reason: "body_memory",
		message: fmt.Sprintf("ingest holds %d bytes of report bodies already (its limit is %d); retry later",
			h.budget.held.Load(), h.budget.size)}
}

// releaseBody returns the body's buffer and budget; the body must not be used afterwards.
func (h *Handler) releaseBody(b body) {
	if b.buf == nil {
		return
	}
	h.buffers.put(b.buf)
	h.budget.give(b.held)
}

// failBody answers a body that could not be read. Every answer before the body was read in
// full closes the connection: what is left of the body is not worth reading (or waiting for).
func (h *Handler) failBody(w http.ResponseWriter, rej *rejection) {
	w.Header().Set("Connection", "close")
	if rej.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(h.cfg.RetryAfter))
	}
	h.fail(w, rej.status, rej.code, rej.message, rej.field)
}
