package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type netDialer = net.Dialer

// dialerFrom dials from a loopback source address of its own (127.0.0.N): the site bounds
// connections per source address (--http.max-conns-per-address), and the legitimate load and
// probes come from 127.0.0.1, as agents come from addresses of their own; "" is the default.
func dialerFrom(from string) *net.Dialer {
	d := &net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	return d
}

func loopback(n int) string { return fmt.Sprintf("127.0.0.%d", n) }

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// connOutcome is how one held connection ended.
type connOutcome struct {
	status int           // the answer's status, 0 when none came
	closed time.Duration // when the server closed it (0: still open at the bound)
	answer time.Duration
	err    string
}

// hold opens a connection, writes first, then trickles one byte of trickle every every
// until the server answers or closes it, or the bound passes; it reports how it ended.
func hold(ctx context.Context, from, addr, first string, trickle string, every time.Duration) connOutcome {
	d := dialerFrom(from)
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return connOutcome{err: errClass(err)}
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, first); err != nil {
		return connOutcome{err: errClass(err), closed: time.Since(start)}
	}
	var out connOutcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err == nil {
			out.status, out.answer = res.StatusCode, time.Since(start)
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			_, err = br.ReadByte() // then the server closes it (or keeps it)
		}
		if ctx.Err() == nil {
			out.closed = time.Since(start)
			if err != nil && err != io.EOF {
				out.err = errClass(err)
			}
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return out
		case <-ctx.Done():
			conn.Close()
			<-done
			return out
		case <-t.C:
			if trickle != "" {
				_, _ = conn.Write([]byte{trickle[i%len(trickle)]})
			}
		}
	}
}

// summarise counts outcomes by answer and by when the connection was closed.
func summarise(a *Attempt, outs []connOutcome) (open int, maxClosed time.Duration) {
	var closedAt []float64
	for _, o := range outs {
		k := "no answer"
		if o.status != 0 {
			k = fmt.Sprintf("answered %d", o.status)
		}
		switch {
		case o.closed == 0:
			k += ", still open at the bound"
			open++
		case o.err != "":
			k += ", closed (" + o.err + ")"
		default:
			k += ", closed by the server"
		}
		a.count(k)
		if o.closed > 0 {
			closedAt = append(closedAt, o.closed.Seconds())
			maxClosed = max(maxClosed, o.closed)
		}
	}
	sort.Float64s(closedAt)
	if len(closedAt) > 0 {
		a.note("closed after %.1f s (first) … %.1f s (median) … %.1f s (last)", closedAt[0], closedAt[len(closedAt)/2], closedAt[len(closedAt)-1])
	}
	return open, maxClosed
}

// attacksConnections: slow and idle connections (A7).
func (r *Run) attacksConnections() {
	addr := r.site.Listen
	r.attempt("A7a", "slow bodies: 300 connections trickling a report body",
		"300 connections from 127.0.0.2: POST /v1/reports headers with Content-Length: 100000 (msgpack, the credential of an enrolled client), then one body byte every 5 s",
		"300 connections, 45 s", "each cut with 408 timeout (--http.min-rate after --http.rate-grace) and closed; legitimate reports 200 promptly", bounded(45*time.Second),
		func(ctx context.Context, a *Attempt) {
			ag := r.attackers[1]
			head := fmt.Sprintf("POST /v1/reports HTTP/1.1\r\nHost: %s\r\nContent-Type: application/msgpack\r\nContent-Length: 100000\r\nStatepipe-Credential: %s\r\nStatepipe-Signature: AAAA\r\n\r\n", addr, ag.Cred)
			outs := make([]connOutcome, 300)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Add(1)
				go func() { defer wg.Done(); outs[i] = hold(ctx, loopback(2), addr, head, "\x80", 5*time.Second) }()
			}
			time.Sleep(3 * time.Second)
			open, _ := r.metric(ctx, "statepipe_http_open_connections", nil)
			a.note("statepipe_http_open_connections at 3 s: %.0f", open)
			wg.Wait()
			stillOpen, last := summarise(a, outs)
			if stillOpen > 0 {
				a.fail("%d of 300 trickling connections still open after %s", stillOpen, bounded(45*time.Second))
			}
			if last > 20*time.Second {
				a.fail("the last trickling connection was cut only after %s", last.Round(time.Millisecond))
			}
		})

	r.attempt("A7b", "slow headers: 300 connections trickling their headers",
		"300 connections from 127.0.0.3: `POST /v1/reports HTTP/1.1`, Host, then one header byte every 2 s",
		"300 connections, 30 s", "closed at --http.read-header-timeout (10 s); legitimate reports 200 promptly", bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			outs := make([]connOutcome, 300)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					outs[i] = hold(ctx, loopback(3), addr, "POST /v1/reports HTTP/1.1\r\nHost: x\r\n", "X-Slow: abcdefghijklmnopqrstuvwxyz", 2*time.Second)
				}()
			}
			wg.Wait()
			stillOpen, last := summarise(a, outs)
			if stillOpen > 0 {
				a.fail("%d of 300 slow-header connections still open at the bound", stillOpen)
			}
			if last > 15*time.Second {
				a.fail("the last slow-header connection was closed only after %s", last.Round(time.Millisecond))
			}
		})

	r.attempt("A7c", "idle connections: 2,000 keep-alives and 1,000 silent connections",
		"2,000 connections that send GET /healthz (keep-alive), read the answer and stay idle (from 127.0.0.4–7, 500 each); 1,000 connections that connect and send nothing (127.0.0.8–9)",
		"3,000 connections, 45 s", "keep-alives closed at --http.idle-timeout (30 s), silent ones at --http.read-header-timeout (10 s); legitimate reports 200 promptly", bounded(45*time.Second),
		func(ctx context.Context, a *Attempt) {
			outs := make([]connOutcome, 3000)
			var wg sync.WaitGroup
			var dialed atomic.Int64
			for i := range outs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					dialed.Add(1)
					if i < 2000 {
						outs[i] = idleAfterRequest(ctx, loopback(4+i/500), addr)
					} else {
						outs[i] = hold(ctx, loopback(8+(i-2000)/500), addr, "", "", time.Hour)
					}
				}()
				if i%100 == 99 {
					time.Sleep(20 * time.Millisecond)
				}
			}
			time.Sleep(5 * time.Second)
			open, _ := r.metric(ctx, "statepipe_http_open_connections", nil)
			a.note("statepipe_http_open_connections at 5 s: %.0f; site RSS %s", open, mib(r.site.RSS()))
			wg.Wait()
			var ka, silent []connOutcome
			ka, silent = outs[:2000], outs[2000:]
			kaOpen, kaLast := summarise(&Attempt{Answers: map[string]int{}}, ka)
			siOpen, siLast := summarise(&Attempt{Answers: map[string]int{}}, silent)
			summarise(a, outs)
			a.note("keep-alives: %d open at the bound, last closed at %s; silent: %d open at the bound, last closed at %s", kaOpen, kaLast.Round(time.Millisecond), siOpen, siLast.Round(time.Millisecond))
			if kaOpen > 0 || siOpen > 0 {
				a.fail("%d keep-alive and %d silent connections still open at the bound", kaOpen, siOpen)
			}
		})

	r.attempt("A7d", "slow readers of large SQL answers",
		"6 connections from 127.0.0.10 (a 4 KiB receive buffer) POST /v1/sql `SELECT number, repeat('x', 600) FROM numbers(99000)` (a ~70 MB answer; a 503 is retried after its Retry-After) and read 1 KiB a second; once all hold an answer, 2 analyst queries",
		"6 + 2 requests, 75 s", "the site cuts each slow reader (statepipe_http_slow_clients_total{direction=\"response\"} +1 each) soon after its send buffer fills; analyst slots not held by them (the 2 queries 200); memory returns; legitimate reports 200 promptly", bounded(75*time.Second),
		func(ctx context.Context, a *Attempt) {
			body := `{"query":"SELECT number, repeat('x', 600) FROM numbers(99000)"}`
			req := fmt.Sprintf("POST /v1/sql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", r.site.ReaderToken, len(body), body)
			const readers = 6
			type res struct {
				read    int64
				holding time.Duration // when its answer began
				cut     time.Duration
				err     string
				status  string
				retries int
			}
			// One answer read at full speed first: its size, and what it costs the site.
			rss0 := r.site.MarkPeakKeep()
			fc, fcancel := context.WithTimeout(ctx, 30*time.Second)
			full := r.sqlRaw(fc, r.site.ReaderToken, "SELECT number, repeat('x', 600) FROM numbers(99000)")
			fcancel()
			a.answer(full)
			answerBytes := int64(len(full.Body))
			a.note("the answer read at full speed: %s, %d bytes, site RSS +%s at peak", full.Key(), answerBytes, mib(r.site.SubPeak()-rss0))
			slow0, _ := r.metric(ctx, "statepipe_http_slow_clients_total", map[string]string{"direction": "response"})
			base := r.site.MarkPeakKeep()
			start := time.Now()
			out := make([]res, readers)
			var wg sync.WaitGroup
			var holding sync.WaitGroup
			holding.Add(readers)
			for i := range out {
				wg.Add(1)
				go func() {
					defer wg.Done()
					held := false
					defer func() {
						if !held {
							holding.Done()
						}
					}()
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(loopback(10))}, Control: func(_, _ string, c syscall.RawConn) error {
						return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
					}}
					for ctx.Err() == nil {
						conn, err := d.DialContext(ctx, "tcp", addr)
						if err != nil {
							out[i].err = errClass(err)
							return
						}
						go func() { <-ctx.Done(); conn.Close() }()
						_, _ = io.WriteString(conn, req)
						buf := make([]byte, 1024)
						n, err := io.ReadAtLeast(conn, buf, 12)
						if err != nil {
							out[i].err = errClass(err)
							conn.Close()
							return
						}
						out[i].status = strings.SplitN(string(buf[:n]), "\r\n", 2)[0]
						if strings.Contains(out[i].status, " 503 ") {
							out[i].retries++
							conn.Close()
							time.Sleep(2 * time.Second)
							continue
						}
						out[i].read, out[i].holding = int64(n), time.Since(start)
						held = true
						holding.Done()
						for ctx.Err() == nil {
							time.Sleep(time.Second)
							_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
							n, err := conn.Read(buf)
							out[i].read += int64(n)
							if err != nil {
								if ctx.Err() == nil {
									out[i].cut, out[i].err = time.Since(start), errClass(err)
								}
								conn.Close()
								return
							}
						}
						conn.Close()
						return
					}
				}()
			}
			waited := make(chan struct{})
			go func() { holding.Wait(); close(waited) }()
			select {
			case <-waited:
			case <-time.After(40 * time.Second):
			}
			a.note("site RSS with the answers held: %s (+%s over %d answers of %d bytes: %.1f× their size)", mib(r.site.RSS()), mib(r.site.SubPeak()-base), readers, answerBytes,
				float64(r.site.SubPeak()-base)/float64(max(1, readers*answerBytes)))
			for i := range 2 {
				c, cancel := context.WithTimeout(ctx, 20*time.Second)
				a.judge(fmt.Sprintf("analyst query %d while the slow readers hold their answers", i+1), r.sqlRaw(c, r.site.ReaderToken, "SELECT count() FROM statepipe_p01.clients"), "", 200)
				cancel()
			}
			held := 0
			for _, o := range out {
				if o.holding > 0 {
					held++
				}
			}
			var slow float64
			var cutAt time.Duration
			for ctx.Err() == nil {
				slow, _ = r.metric(ctx, "statepipe_http_slow_clients_total", map[string]string{"direction": "response"})
				if slow-slow0 >= float64(held) {
					cutAt = time.Since(start)
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			a.note("%d readers held an answer; statepipe_http_slow_clients_total{direction=\"response\"} %.0f → %.0f (all cut by %s); RSS after the cuts %s", held, slow0, slow, cutAt.Round(time.Millisecond), mib(r.site.RSS()))
			if slow-slow0 < float64(held) {
				a.fail("only %.0f of the %d slow readers were cut by the site within %s", slow-slow0, held, bounded(75*time.Second))
			}
			<-ctx.Done()
			wg.Wait()
			for i, o := range out {
				a.count(fmt.Sprintf("slow reader: %s", o.status))
				a.note("reader %d: %q after %d retries of 503, answer began at %s, %d bytes read by the bound (the kernel keeps delivering what the site wrote before it cut)", i+1, o.status, o.retries, o.holding.Round(time.Millisecond), o.read)
			}
		})
}

// attackOneAddress: more connections from one address than the site allows one address (A7e).
func (r *Run) attackOneAddress() {
	addr := r.site.Listen
	r.attempt("A7e", "one address holding more connections than the site allows it",
		"1,100 idle connections from 127.0.0.11 (each after a GET /healthz, keep-alive), held; meanwhile a new connection from 127.0.0.11 and one from 127.0.0.12 ask /healthz",
		"1,100 + 2 connections, 45 s", "1,000 held (--http.max-conns-per-address), the rest closed at once (statepipe_http_connections_refused_total); the other address served; legitimate reports (127.0.0.1) unaffected", bounded(45*time.Second),
		func(ctx context.Context, a *Attempt) {
			refused0, _ := r.metric(ctx, "statepipe_http_connections_refused_total", nil)
			outs := make([]connOutcome, 1100)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Add(1)
				go func() { defer wg.Done(); outs[i] = idleAfterRequest(ctx, loopback(11), addr) }()
				if i%100 == 99 {
					time.Sleep(20 * time.Millisecond)
				}
			}
			time.Sleep(5 * time.Second)
			probe := func(from string) Resp {
				c, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				hc := &http.Client{Transport: &http.Transport{DialContext: dialerFrom(from).DialContext, DisableKeepAlives: true}}
				return do(c, hc, http.MethodGet, r.site.URL()+"/healthz", nil, nil)
			}
			a.judge("a new connection from the crowded address 127.0.0.11", probe(loopback(11)), "", cutByServer)
			a.judge("a new connection from another address, 127.0.0.12", probe(loopback(12)), "", 200)
			open, _ := r.metric(ctx, "statepipe_http_open_connections", nil)
			refused, _ := r.metric(ctx, "statepipe_http_connections_refused_total", nil)
			a.note("at 5 s: statepipe_http_open_connections %.0f; statepipe_http_connections_refused_total %.0f → %.0f", open, refused0, refused)
			if refused-refused0 < 100 {
				a.fail("only %.0f connections from one address were refused (want at least 100 of 1,100 over the 1,000 allowed)", refused-refused0)
			}
			wg.Wait()
			stillOpen, _ := summarise(a, outs)
			if stillOpen > 0 {
				a.fail("%d connections still open at the bound", stillOpen)
			}
			served := 0
			for _, o := range outs {
				if o.status == 200 {
					served++
				}
			}
			a.note("%d of the 1,100 connections from 127.0.0.11 were served", served)
			if served > 1000 {
				a.fail("%d connections from one address were served (the default --http.max-conns-per-address is 1,000)", served)
			}
		})
}

// idleAfterRequest sends GET /healthz with keep-alive, reads the answer, then waits for the
// server to close the connection.
func idleAfterRequest(ctx context.Context, from, addr string) connOutcome {
	d := dialerFrom(from)
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return connOutcome{err: errClass(err)}
	}
	defer conn.Close()
	go func() { <-ctx.Done(); conn.Close() }()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return connOutcome{err: errClass(err), closed: time.Since(start)}
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		if ctx.Err() != nil {
			return connOutcome{}
		}
		return connOutcome{err: errClass(err), closed: time.Since(start)}
	}
	out := connOutcome{status: res.StatusCode, answer: time.Since(start)}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_, err = br.ReadByte()
	if ctx.Err() == nil {
		out.closed = time.Since(start)
		if err != nil && err != io.EOF {
			out.err = errClass(err)
		}
	}
	return out
}
