package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

var randReader = crand.Reader

// attacksInput: handler bugs and non-UTF-8 (A1), deep nesting (A2), amplification (A3),
// wrapped integers (A4).
func (r *Run) attacksInput() {
	ag := r.attackers[0]
	post := func(ctx context.Context, a *Attempt, name string, body []byte, ct, field string, want ...int) Resp {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res := ag.post(ctx, body, ct)
		a.judge(name, res, field, want...)
		return res
	}

	r.attempt("A1a", "non-UTF-8 and control characters in report bodies",
		`signed msgpack reports with topic_id "\xff", client "\xff", site "\xff", params ["\xff"], topic_id "a\x00b" and "\xc2\x80" (C1); JSON with a raw 0xFF byte and a lone surrogate "\udcff"; unsigned msgpack with "\xff"; a valid report with an unknown key "\xff" (skipped by design)`,
		"10 requests, 60 s", "400 naming the field (401 unsigned); the unknown key skipped (200)", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			m := func(tid string) []field { return msgFields(ag.next(), tid, 2) }
			post(ctx, a, `topic_id "\xff"`, mpReport(ag.ID, site, nil, m("\xff")), schema.MediaMsgpack, "messages[0].topic_id", 400)
			post(ctx, a, `client "\xff"`, mpReport("\xff", site, nil, m("KB1")), schema.MediaMsgpack, "client", 400)
			post(ctx, a, `site "\xff"`, mpReport(ag.ID, "\xff", nil, m("KB1")), schema.MediaMsgpack, "site", 400)
			post(ctx, a, `params ["\xff"]`, mpReport(ag.ID, site, nil, with(m("KB1"), "params", enc(func(x *mp) { x.arrLen(1).str("\xff") }))), schema.MediaMsgpack, "messages[0].params[0]", 400)
			post(ctx, a, `topic_id "a\x00b"`, mpReport(ag.ID, site, nil, m("a\x00b")), schema.MediaMsgpack, "messages[0].topic_id", 400)
			post(ctx, a, `topic_id "\xc2\x80" (C1 control)`, mpReport(ag.ID, site, nil, m("\xc2\x80")), schema.MediaMsgpack, "messages[0].topic_id", 400)
			js := fmt.Sprintf(`{"v":1,"client":%q,"site":"P01","messages":[{"serial":%d,"time":%d,"topic_type":500,"topic_id":"`+"\xff"+`","state":2,"error":0}]}`, ag.ID, ag.next(), time.Now().UnixMilli())
			post(ctx, a, `JSON topic_id with a raw 0xFF byte`, []byte(js), schema.MediaJSON, "", 400)
			js = fmt.Sprintf(`{"v":1,"client":%q,"site":"P01","messages":[{"serial":%d,"time":%d,"topic_type":500,"topic_id":"\udcff","state":2,"error":0}]}`, ag.ID, ag.next(), time.Now().UnixMilli())
			post(ctx, a, `JSON topic_id "\udcff" (lone surrogate)`, []byte(js), schema.MediaJSON, "", 400)
			uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res := do(uctx, r.hc, http.MethodPost, r.site.URL()+"/v1/reports", bodyOf(mpReport(ag.ID, site, nil, m("\xff"))), map[string]string{"Content-Type": schema.MediaMsgpack})
			cancel()
			a.judge(`unsigned, topic_id "\xff"`, res, "", 401)
			// A valid report with an unknown key named "\xff": msgpack skips unknown keys.
			msg := ag.msg("KB-HOSTILE-UNKNOWNKEY", 2)
			body := mpReport(ag.ID, site, []field{{"\xff", enc(func(x *mp) { x.str("\xff") })}},
				with(msgFields(msg.Serial, msg.TopicID, 2), "time", enc(func(x *mp) { x.int(msg.Time) })))
			if res := post(ctx, a, `valid report with an unknown key "\xff"`, body, schema.MediaMsgpack, "", 200); res.Status == 200 {
				r.oracle.Apply(&schema.Report{V: 1, Client: ag.ID, Site: site, Messages: []schema.StateMessage{msg}})
			}
		})

	r.attempt("A1b", "non-UTF-8, control characters, overlong and 20,000-id report parameters",
		"GET /v1/reports/NAME with every parameter = %FF, %00, %7F, %C2%80, 129 bytes, 600 KiB, a 1.1 MiB URL, updates= of 1,001 and of 20,000 ids, repeated parameters, /v1/reports/%FF, no token",
		"~45 requests, 60 s", "400 naming the parameter (404 name, 401 no token, 431 for a URL past the header limit)", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			ids := func(n int) string {
				var b strings.Builder
				for i := range n {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "KB%07d", i)
				}
				return b.String()
			}
			long := strings.Repeat("x", 129)
			cases := []struct {
				path, field string
				want        []int
			}{
				{"/v1/reports/computer?client=" + ag.ID + "&updates=%FF", "updates", []int{400}},
				{"/v1/reports/computer?client=%FF&updates=KB1", "client", []int{400}},
				{"/v1/reports/computer?client=" + ag.ID + "&list=%FF", "list", []int{400}},
				{"/v1/reports/compliance?updates=%FF", "updates", []int{400}},
				{"/v1/reports/compliance?updates=KB1,%FF,KB2", "updates", []int{400}},
				{"/v1/reports/compliance?list=%FF", "list", []int{400}},
				{"/v1/reports/compliance?collection=%FF", "collection", []int{400}},
				{"/v1/reports/compliance?source=%FF", "source", []int{400}},
				{"/v1/reports/compliance?site=%FF", "site", []int{400}},
				{"/v1/reports/deployment?deployment=%FF", "deployment", []int{400}},
				{"/v1/reports/deployment?deployment=d&state=%FF", "state", []int{400}},
				{"/v1/reports/deployment?deployment=d&state=99999999999999999999", "state", []int{400}},
				{"/v1/reports/errors?deployment=%FF", "deployment", []int{400}},
				{"/v1/reports/scan?collection=%FF", "collection", []int{400}},
				{"/v1/reports/scan?days=%FF", "days", []int{400}},
				{"/v1/reports/scan?days=-1", "days", []int{400}},
				{"/v1/reports/update?update=%FF", "update", []int{400}},
				{"/v1/reports/trend?list=%FF", "list", []int{400}},
				{"/v1/reports/trend?updates=KB1&from=%FF", "from", []int{400}},
				{"/v1/reports/trend?updates=KB1&step=%FF", "step", []int{400}},
				{"/v1/reports/trend?updates=KB1&from=1970-01-01T00:00:00Z&to=2261-01-01T00:00:00Z&step=1ms", "step", []int{400}},
				{"/v1/reports/trend?updates=KB1&from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", "from", []int{400}},
				{"/v1/reports/compliance?updates=%00", "updates", []int{400}},
				{"/v1/reports/computer?client=%7F&updates=KB1", "client", []int{400}},
				{"/v1/reports/update?update=%C2%80", "update", []int{400}},
				{"/v1/reports/update?update=" + long, "update", []int{400}},
				{"/v1/reports/computer?client=" + long + "&updates=KB1", "client", []int{400}},
				{"/v1/reports/compliance?collection=" + long, "collection", []int{400}},
				{"/v1/reports/compliance?updates=" + ids(1001), "updates", []int{400}},
				{"/v1/reports/compliance?updates=" + ids(20000), "updates", []int{400}},
				{"/v1/reports/computer?client=" + ag.ID + "&updates=" + ids(20000), "updates", []int{400}},
				{"/v1/reports/trend?updates=" + ids(20000), "updates", []int{400}},
				{"/v1/reports/update?update=" + strings.Repeat("y", 600<<10), "update", []int{400}},
				{"/v1/reports/update?update=" + strings.Repeat("z", 1100<<10), "", []int{431, 400, 414, cutByServer}},
				{"/v1/reports/update?update=a&update=b", "update", []int{400}},
				{"/v1/reports/%FF", "name", []int{404}},
				{"/v1/reports/" + strings.Repeat("n", 5000), "name", []int{404}},
				{"/v1/reports/compliance?updates=" + strings.Repeat(",", 200000), "updates", []int{400, 200}},
			}
			for _, c := range cases {
				res := r.get(ctx, r.site.ReaderToken, c.path)
				name := "GET " + clipped(c.path, 90)
				if len(c.path) > 90 {
					name += fmt.Sprintf(" (%d bytes)", len(c.path))
				}
				a.judge(name, res, c.field, c.want...)
			}
			a.judge("GET /v1/reports/computer?updates=%FF without a token", r.get(ctx, "", "/v1/reports/computer?client=x&updates=%FF"), "Authorization", 401)
		})

	r.attempt("A1c", "non-UTF-8 in enrolment and administrative bodies",
		`POST /v1/enroll with client "\xff" (raw byte in JSON), "a\u0000b", name "\xff"; /v1/revoke, /v1/resync, /v1/ref/catalog and /v1/sql with raw 0xFF bytes; /v1/ref/%FF`,
		"9 requests, 30 s", "400 (404 for an unknown kind); never 5xx, never an enrolment of a rewritten id", bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			_, key, _ := ed25519.GenerateKey(crand.Reader)
			pub := b64(key.Public().(ed25519.PublicKey))
			res := r.enrollRaw(ctx, []byte(`{"client":"`+"\xff"+`","site":"P01","public_key":"`+pub+`"}`), nil)
			// The whole body is refused (field body): it is not valid UTF-8.
			if !a.judge(`enrol client "\xff"`, res, "body", 400) && res.Status == 200 {
				// What was enrolled: another invalid byte, and U+FFFD itself, with other keys.
				pub2 := b64(pubOf(newKey()))
				r2 := r.enrollRaw(ctx, []byte(`{"client":"`+"\xfe"+`","site":"P01","public_key":"`+pub2+`"}`), nil)
				a.answer(r2)
				a.note(`effect: after client "\xff" was enrolled, client "\xfe" with another key answered %s %s — both ids decode to U+FFFD`, r2.Key(), clipped(r2.Message, 120))
			}
			res = r.enrollRaw(ctx, []byte(`{"client":"hostile\u0000nul","site":"P01","public_key":"`+pub+`"}`), nil)
			a.judge(`enrol client "hostile\u0000nul"`, res, "client", 400)
			res = r.enrollRaw(ctx, []byte(`{"client":"hostile-name","name":"`+"\xff"+`","site":"P01","public_key":"`+pub+`"}`), nil)
			a.judge(`enrol name "\xff"`, res, "body", 400)
			admin := map[string]string{"Authorization": "Bearer " + r.site.AdminToken, "Content-Type": "application/json"}
			res = do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/revoke", strings.NewReader(`{"client":"`+"\xff"+`"}`), admin)
			if !a.judge(`revoke client "\xff"`, res, "", 400) && res.Status == 200 {
				a.note("effect: the revocation of \"\\xff\" answered %s", clipped(string(res.Body), 160))
				time.Sleep(300 * time.Millisecond)
				r2 := r.enrollRaw(ctx, enrollBody("\ufffd", pubOf(newKey())), nil)
				a.answer(r2)
				a.note(`effect: then client "\ufffd" (valid UTF-8) with a new key answered %s — the revocation of "\xff" revoked U+FFFD`, r2.Key())
			}
			res = do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/resync", strings.NewReader(`{"collection":"`+"\xff"+`"}`), admin)
			a.judge(`resync collection "\xff"`, res, "", 400, 404)
			line := `{"id":"` + "\xff" + `","title":"x","first_synced":"2024-01-01T00:00:00Z"}` + "\n"
			res = do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/ref/catalog", strings.NewReader(line), admin)
			if !a.judge(`catalog line with id "\xff"`, res, "", 400) && res.Status == 200 {
				time.Sleep(3 * time.Second)
				if q, err := r.sql(ctx, r.site.AdminToken, "SELECT id, hex(id), title FROM statepipe_p01.v_updates WHERE title = 'x'"); err == nil {
					a.note("effect: the catalog now holds %v", q.Rows)
				}
			}
			line = `{"id":"hostile-coll","name":"x","members":["` + "\xff" + `"]}` + "\n"
			res = do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/ref/collections", strings.NewReader(line), admin)
			a.judge(`collection member "\xff"`, res, "", 400)
			res = do(ctx, r.hc, http.MethodPost, r.site.URL()+"/v1/ref/%FF", strings.NewReader("{}\n"), admin)
			a.judge(`POST /v1/ref/%FF`, res, "", 404, 400)
			res = r.sqlBody(ctx, r.site.ReaderToken, []byte(`{"query":"SELECT '`+"\xff"+`'"}`))
			a.judge(`SQL with a raw 0xFF byte in the query`, res, "", 200, 400)
		})

	// A2: deep nesting.
	nestArrays := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x91}, depth)
		return append(b, 0xc0)
	}
	nestMaps := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x81, 0xa1, 'k'}, depth)
		return append(b, 0xc0)
	}
	twice := func(ctx context.Context, a *Attempt, name string, send func() Resp, field string, want ...int) {
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.judge(fmt.Sprintf("%s (#%d of 2 at once)", name, i+1), send(), field, want...)
			}()
		}
		wg.Wait()
	}
	r.attempt("A2a", "deep nesting: msgpack arrays 6 M deep",
		`a report whose unknown key "x" holds an array nested 6,000,000 deep (0x91 × 6 M, 6 MiB), signed and unsigned; the same under an unknown key of messages[0]; 2 of each at once`,
		"6 requests, 60 s", "400 naming the key (401 unsigned: refused before decoding)", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			deep := nestArrays(6_000_000)
			body := mpReport(ag.ID, site, []field{{"x", deep}}, msgFields(ag.next(), "KB1", 2))
			twice(ctx, a, "signed, 6 M arrays under x", func() Resp {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				return ag.post(c, body, schema.MediaMsgpack)
			}, "x", 400)
			twice(ctx, a, "unsigned, 6 M arrays under x", func() Resp {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				return do(c, r.hc, http.MethodPost, r.site.URL()+"/v1/reports", bodyOf(body), map[string]string{"Content-Type": schema.MediaMsgpack})
			}, "", 401)
			body2 := mpReport(ag.ID, site, nil, append(msgFields(ag.next(), "KB1", 2), field{"x", deep}))
			twice(ctx, a, "signed, 6 M arrays under messages[0].x", func() Resp {
				c, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				return ag.post(c, body2, schema.MediaMsgpack)
			}, "", 400)
			a.note("body %d bytes", len(body))
		})
	r.attempt("A2b", "deep nesting: msgpack maps 2 M deep, nesting in params and messages",
		`maps nested 2,000,000 deep under "x" (6 MiB); params = arrays nested 6 M deep; messages = [[[…]]] 6 M deep; 2 of each at once`,
		"6 requests, 60 s", "400", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			sendBody := func(b []byte) func() Resp {
				return func() Resp {
					c, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					return ag.post(c, b, schema.MediaMsgpack)
				}
			}
			twice(ctx, a, "2 M maps under x", sendBody(mpReport(ag.ID, site, []field{{"x", nestMaps(2_000_000)}}, msgFields(ag.next(), "KB1", 2))), "x", 400)
			twice(ctx, a, "params nested 6 M", sendBody(mpReport(ag.ID, site, nil, with(msgFields(ag.next(), "KB1", 2), "params", nestArrays(6_000_000)))), "", 400)
			twice(ctx, a, "messages nested 6 M", sendBody(mpReport(ag.ID, site, []field{{"messages", nestArrays(6_000_000)}})), "", 400)
		})
	r.attempt("A2c", "deep nesting: JSON 100 k and 4 M deep",
		`JSON reports with "x": [[[…]]] 100,000 deep, messages: [[[…]]] 100,000 deep, objects {"a":{"a":…}} 100,000 deep, and 8 MiB of "[" (4 M deep, unclosed); 2 of each at once`,
		"8 requests, 60 s", "400", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			sendJSON := func(b []byte) func() Resp {
				return func() Resp {
					c, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					return ag.post(c, b, schema.MediaJSON)
				}
			}
			head := fmt.Sprintf(`{"v":1,"client":%q,"site":"P01",`, ag.ID)
			msg := fmt.Sprintf(`{"serial":%d,"time":%d,"topic_type":500,"topic_id":"KB1","state":2,"error":0}`, ag.next(), time.Now().UnixMilli())
			arr := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
			twice(ctx, a, `JSON "x" nested 100 k`, sendJSON([]byte(head+`"messages":[`+msg+`],"x":`+arr+`}`)), "", 400)
			twice(ctx, a, `JSON messages nested 100 k`, sendJSON([]byte(head+`"messages":`+arr+`}`)), "", 400)
			obj := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
			twice(ctx, a, `JSON objects nested 100 k under messages[0]`, sendJSON([]byte(head+`"messages":[`+obj+`]}`)), "", 400)
			twice(ctx, a, `JSON 8 MiB of "["`, sendJSON([]byte(head+`"messages":`+strings.Repeat("[", 8<<20-len(head)-20))), "", 400)
		})

	// A3: amplification. Each variant 4 at once, twice; RSS rise judged against 4 × body.
	amplify := func(id, attack, sent, expect string, body []byte, ct, field string, want ...int) {
		r.attempt(id, attack, sent, "2 rounds × 4 at once, 60 s", expect, bounded(60*time.Second),
			func(ctx context.Context, a *Attempt) {
				for round := range 2 {
					var wg sync.WaitGroup
					for i := range 4 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							c, cancel := context.WithTimeout(ctx, 40*time.Second)
							defer cancel()
							a.judge(fmt.Sprintf("round %d #%d", round+1, i+1), r.attackers[i].post(c, body, ct), field, want...)
						}()
					}
					wg.Wait()
				}
				a.note("body %d bytes (%.1f MiB)", len(body), float64(len(body))/(1<<20))
				rise := float64(r.site.Peak()-a.RSSBefore) / float64(4*len(body))
				a.note("RSS rise at peak = %.2f× the 4 bodies in flight (goal < 4×)", rise)
				if rise >= 4 {
					a.fail("RSS rose %s for 4 bodies of %d bytes: %.1f× (goal < 4×)", mib(r.site.Peak()-a.RSSBefore), len(body), rise)
				}
			})
	}
	aid := r.attackers[0].ID
	// paramsBody is attacker-0's 7.9 MiB report of 480 messages × 16 params × 1 KiB of fill
	// (the limits), the last message's state 99: decoded whole, then refused by validation.
	paramsBody := func(fill string) []byte {
		var m mp
		n := 480
		m.mapLen(4).str("v").uint(1).str("client").str(aid).str("site").str(site).str("messages")
		m.arrLen(n)
		p := strings.Repeat(fill, 1024)
		for i := range n {
			fs := msgFields(uint64(1<<62+i), "KB-HOSTILE-PARAMS", 2)
			if i == n-1 {
				fs = with(fs, "state", enc(func(x *mp) { x.int(99) }))
			}
			fs = with(fs, "params", enc(func(x *mp) {
				x.arrLen(16)
				for range 16 {
					x.str(p)
				}
			}))
			writeFields(&m, fs)
		}
		return m.b
	}
	{
		var m mp
		m.mapLen(4).str("v").uint(1).str("client").str(aid).str("site").str(site).str("messages")
		n := (8<<20 - len(m.b) - 5)
		m.arr32(uint32(n))
		m.b = append(m.b, bytes.Repeat([]byte{0x80}, n)...)
		amplify("A3a", "amplification: msgpack array32 of 8 M empty maps",
			"messages: array32 claiming and holding 8.4 M empty maps (fixmap 0) in an 8 MiB body, signed",
			"413 too_large naming messages, before decoding any", m.b, schema.MediaMsgpack, "messages", 413)
	}
	{
		var m mp
		m.mapLen(5).str("v").uint(1).str("client").str(aid).str("site").str(site).str("messages")
		m.arr32(50000)
		m.b = append(m.b, bytes.Repeat([]byte{0x80}, 50000)...)
		m.str("pad").bin32(8<<20 - len(m.b) - 10)
		amplify("A3b", "amplification: msgpack 50,000 empty messages + padding",
			"50,000 empty maps as messages (the limit) and an 8 MiB bin32 under an unknown key, signed",
			"400 naming messages[0] (no serial)", m.b, schema.MediaMsgpack, "", 400)
	}
	{
		head := `{"v":1,"client":"` + aid + `","site":"P01","messages":[`
		n := (8<<20 - len(head) - 2) / 3
		body := []byte(head + strings.TrimSuffix(strings.Repeat("{},", n), ",") + "]}")
		amplify("A3c", "amplification: JSON 8 MiB of {},{},…",
			`JSON messages [{},{},…] (2.8 M empty objects, 8 MiB), signed`,
			"413 too_large naming messages", body, schema.MediaJSON, "messages", 413)
	}
	{
		head := `{"v":1,"client":"` + aid + `","site":"P01","messages":[`
		msgs := strings.TrimSuffix(strings.Repeat("{},", 50000), ",")
		body := []byte(head + msgs + "]" + strings.Repeat(" ", 8<<20-len(head)-len(msgs)-2) + "}")
		amplify("A3d", "amplification: JSON 50,000 empty messages + 8 MiB whitespace",
			"JSON with 50,000 {} (the limit) and whitespace to 8 MiB, signed", "400 naming messages[0]", body, schema.MediaJSON, "", 400)
	}
	{
		var m mp
		m.mapLen(4).str("v").uint(1).str("client").str(aid).str("site").str(site).str("messages")
		m.arr32(50000)
		for range 50000 {
			m.mapLen(1).str("params").arrLen(16)
			m.b = append(m.b, bytes.Repeat([]byte{0xa0}, 16)...)
		}
		amplify("A3e", "amplification: msgpack 50,000 messages × 16 empty params",
			"50,000 messages each {params: 16 × \"\"} (1.2 MiB decoding to ~17 MiB of Go values), signed",
			"400 (allocation budget of 4× the body, or messages[0].serial)", m.b, schema.MediaMsgpack, "", 400)
	}
	{
		amplify("A3f", "amplification: msgpack 7.9 MiB of 1 KiB params, decoded whole",
			"480 messages × 16 params × 1 KiB (the limits), the last message's state 99: decoded whole, refused by validation, signed",
			"400 naming messages[479].state", paramsBody("p"), schema.MediaMsgpack, "messages[479].state", 400)
	}
	{
		// A3h: one enrolled client sends signed bodies that fail validation only after being
		// decoded whole, as fast as 8 connections allow: a signed client's rate
		// (--ingest.client-rate) is checked before its body is read, so past its burst the
		// bodies are answered 429 unread.
		body := paramsBody("q")
		r.attempt("A3h", "one client past its rate with bodies refused after decoding",
			"attacker-0's credential, 8 connections at once, each sending the 7.9 MiB body of A3f (480 messages × 16 × 1 KiB params, refused at messages[479].state) again as soon as answered",
			"20 s", "every body refused (400, or 429/503 with Retry-After); legitimate reports and probes unaffected; the share of 429 noted (a signed client's rate is checked before its body is read)", bounded(20*time.Second),
			func(ctx context.Context, a *Attempt) {
				cpu0, start := procCPU(r.site.PID()), time.Now()
				var wg sync.WaitGroup
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							c, cancel := context.WithTimeout(ctx, 30*time.Second)
							res := ag.post(c, body, schema.MediaMsgpack)
							cancel()
							if ctx.Err() != nil && res.Err != nil {
								return
							}
							a.answer(res)
							switch {
							case res.Status == 400 || res.Status == 429 || res.Status == 503:
							default:
								a.fail("unexpected answer %s %s", res.Key(), clipped(res.Message, 100))
							}
						}
					}()
				}
				wg.Wait()
				cpu := (procCPU(r.site.PID()) - cpu0) / time.Since(start).Seconds()
				a.mu.Lock()
				n429 := a.Answers["429 paced field=client"]
				total := a.Requests
				a.mu.Unlock()
				a.note("%d bodies of %.1f MiB in %s (%.0f/s, against --ingest.client-rate 5/s, burst 20); %d answered 429; the site used %.0f%% of a CPU meanwhile",
					total, float64(len(body))/(1<<20), time.Since(start).Round(time.Millisecond), float64(total)/time.Since(start).Seconds(), n429, cpu*100)
			})
	}
	r.attempt("A3g", "amplification: bodies past 8 MiB",
		"8 MiB + 1 with Content-Length; 64 MiB chunked without a length; Content-Length 100 then 8 MiB + 1 sent; 4 of each at once",
		"12 requests, 60 s", "413 too_large naming body, connection closed, nothing buffered past the limit", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			big := bytes.Repeat([]byte{0xc0}, 8<<20+1)
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(3)
				go func() {
					defer wg.Done()
					c, cancel := context.WithTimeout(ctx, 40*time.Second)
					defer cancel()
					a.judge(fmt.Sprintf("8 MiB + 1 with Content-Length #%d", i+1), r.attackers[i].post(c, big, schema.MediaMsgpack), "body", 413)
				}()
				go func() {
					defer wg.Done()
					c, cancel := context.WithTimeout(ctx, 40*time.Second)
					defer cancel()
					pr, pw := io.Pipe()
					go func() {
						chunk := make([]byte, 1<<20)
						for range 64 {
							if _, err := pw.Write(chunk); err != nil {
								return
							}
						}
						pw.Close()
					}()
					res := do(c, r.hc, http.MethodPost, r.site.URL()+"/v1/reports", pr, map[string]string{"Content-Type": schema.MediaMsgpack,
						schema.HeaderCredential: r.attackers[i].Cred, schema.HeaderSignature: "AAAA"})
					pr.Close()
					a.judge(fmt.Sprintf("64 MiB chunked #%d", i+1), res, "body", 413)
				}()
				go func() {
					defer wg.Done()
					c, cancel := context.WithTimeout(ctx, 40*time.Second)
					defer cancel()
					res := rawExchange(c, r.site.Listen, fmt.Sprintf("POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\nContent-Length: 100\r\n\r\n%s", big))
					a.judge(fmt.Sprintf("Content-Length 100, 8 MiB + 1 sent #%d", i+1), res, "", 400, 401)
				}()
			}
			wg.Wait()
		})

	r.attempt("A4", "wrapped integers",
		"signed msgpack: topic_type 66036 (uint32: 500 + 2^16), state 2^32+3, error 2^40|5, full_types [66036], serial −1 and −2^63, time 2^63, v 2^32+1, state −2^31−1, topic_type 500.0 (float); JSON: topic_type 66036, state 4294967299, error 1099511627781, serial −1, serial 2^64, serial 1.0, serial 1e2, state \"3\", full_types [66036], v 4294967297",
		"20 requests at 4/s, 30 s", "400 naming the field, each", bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			// One attacker client sends them all: at its rate (--ingest.client-rate, 5/s), so
			// each is judged on its content, not refused 429 before its body is read.
			post := func(ctx context.Context, a *Attempt, name string, body []byte, media, field string, status int) {
				time.Sleep(250 * time.Millisecond)
				post(ctx, a, name, body, media, field, status)
			}
			type c struct {
				name, key, field string
				val              []byte
			}
			cases := []c{
				{"topic_type 66036 (u32)", "topic_type", "messages[0].topic_type", enc(func(x *mp) { x.u32(66036) })},
				{"state 2^32+3 (u64)", "state", "messages[0].state", enc(func(x *mp) { x.u64(1<<32 + 3) })},
				{"error 2^40|5 (u64)", "error", "messages[0].error", enc(func(x *mp) { x.u64(1<<40 | 5) })},
				{"serial -1 (int8)", "serial", "messages[0].serial", enc(func(x *mp) { x.int(-1) })},
				{"serial -2^63 (int64)", "serial", "messages[0].serial", enc(func(x *mp) { x.i64(-1 << 63) })},
				{"time 2^63 (u64)", "time", "messages[0].time", enc(func(x *mp) { x.u64(1 << 63) })},
				{"state -2^31-1 (int64)", "state", "messages[0].state", enc(func(x *mp) { x.i64(-1<<31 - 1) })},
				{"topic_type 500.0 (float64)", "topic_type", "messages[0].topic_type", enc(func(x *mp) { x.f64(500) })},
			}
			for _, cs := range cases {
				body := mpReport(ag.ID, site, nil, with(msgFields(ag.next(), "KB-HOSTILE-WRAP", 2), cs.key, cs.val))
				post(ctx, a, "msgpack "+cs.name, body, schema.MediaMsgpack, cs.field, 400)
			}
			post(ctx, a, "msgpack full_types [66036]", mpReport(ag.ID, site, []field{{"full_types", enc(func(x *mp) { x.arrLen(1).u32(66036) })}},
				msgFields(ag.next(), "KB-HOSTILE-WRAP", 2)), schema.MediaMsgpack, "full_types[0]", 400)
			var m mp
			m.mapLen(4).str("v").u64(1<<32 + 1).str("client").str(ag.ID).str("site").str(site).str("messages").arrLen(1)
			writeFields(&m, msgFields(ag.next(), "KB-HOSTILE-WRAP", 2))
			post(ctx, a, "msgpack v 2^32+1", m.b, schema.MediaMsgpack, "v", 400)
			js := func(fields string) []byte {
				return []byte(fmt.Sprintf(`{"v":1,"client":%q,"site":"P01","messages":[{%s}]}`, ag.ID, fields))
			}
			now := time.Now().UnixMilli()
			base := func(over map[string]string) string {
				f := map[string]string{"serial": fmt.Sprint(ag.next()), "time": fmt.Sprint(now), "topic_type": "500", "topic_id": `"KB-HOSTILE-WRAP"`, "state": "2", "error": "0"}
				for k, v := range over {
					f[k] = v
				}
				var parts []string
				for _, k := range []string{"serial", "time", "topic_type", "topic_id", "state", "error"} {
					parts = append(parts, fmt.Sprintf("%q:%s", k, f[k]))
				}
				return strings.Join(parts, ",")
			}
			jcases := []struct{ name, key, val, field string }{
				{"topic_type 66036", "topic_type", "66036", "messages[0].topic_type"},
				{"state 4294967299", "state", "4294967299", "messages[0].state"},
				{"error 1099511627781", "error", "1099511627781", "messages[0].error"},
				{"serial -1", "serial", "-1", "messages[0].serial"},
				{"serial 2^64", "serial", "18446744073709551616", "messages[0].serial"},
				{"serial 1.0", "serial", "1.0", "messages[0].serial"},
				{"serial 1e2", "serial", "1e2", "messages[0].serial"},
				{`state "3"`, "state", `"3"`, "messages[0].state"},
			}
			for _, jc := range jcases {
				post(ctx, a, "JSON "+jc.name, js(base(map[string]string{jc.key: jc.val})), schema.MediaJSON, jc.field, 400)
			}
			post(ctx, a, "JSON full_types [66036]", []byte(fmt.Sprintf(`{"v":1,"client":%q,"site":"P01","full_types":[66036],"messages":[{%s}]}`, ag.ID, base(nil))), schema.MediaJSON, "full_types[0]", 400)
			post(ctx, a, "JSON v 4294967297", []byte(fmt.Sprintf(`{"v":4294967297,"client":%q,"site":"P01","messages":[{%s}]}`, ag.ID, base(nil))), schema.MediaJSON, "v", 400)
		})
	r.checkpoint("after the input attacks (A1–A4)")
}

// rawExchange writes req on a new connection and reads the status line of the answer.
func rawExchange(ctx context.Context, addr, req string) Resp {
	start := time.Now()
	var d netDialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Resp{Err: err}
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	go func() { _, _ = io.WriteString(conn, req) }()
	res, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		return Resp{Err: err, Latency: time.Since(start)}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	out := Resp{Status: res.StatusCode, Header: res.Header, Body: b, Latency: time.Since(start)}
	var eb schema.ErrorBody
	if jsonUnmarshal(b, &eb) == nil {
		out.Code, out.Field, out.Message = eb.Error.Code, eb.Error.Field, eb.Error.Message
	}
	return out
}
