package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// writeQueries are statements that would write a file, reach out, change a setting or a
// table, or stop the engine. %N% is a file that must never exist, %T% a file whose content
// must never change, %R% a relative path, %PORT% the site's port. harmless marks those whose
// acceptance would not write anything (judged as notes, not failures).
var writeQueries = []struct {
	q        string
	harmless bool
}{
	{"SELECT 1 INTO OUTFILE '%N%'", false},
	{"SELECT 1 INTO OUTFILE '%T%' TRUNCATE", false},
	{"SELECT 1 INTO OUTFILE '%T%' APPEND", false},
	{"SELECT 1 INTO OUTFILE '%N%' COMPRESSION 'gzip'", false},
	{"SELECT number FROM numbers(10) INTO OUTFILE '%N%' TRUNCATE COMPRESSION 'zstd' LEVEL 3", false},
	{"SELECT 1 INTO OUTFILE '%N%' AND STDOUT", false},
	{"SELECT 1 INTO OUTFILE '%N%' FORMAT CSV", false},
	{"SELECT 1 INTO OUTFILE '%R%'", false},
	{"select 1 into outfile '%N%'", false},
	{"SHOW TABLES INTO OUTFILE '%N%'", false},
	{"SHOW DATABASES INTO OUTFILE '%N%' APPEND", false},
	{"SHOW CREATE TABLE statepipe_p01.state_messages INTO OUTFILE '%N%'", false},
	{"DESCRIBE TABLE statepipe_p01.state_messages INTO OUTFILE '%N%'", false},
	{"DESC statepipe_p01.clients INTO OUTFILE '%N%' TRUNCATE", false},
	{"EXISTS TABLE statepipe_p01.state_messages INTO OUTFILE '%N%'", false},
	{"EXPLAIN SELECT 1 INTO OUTFILE '%N%'", false},
	{"WITH x AS (SELECT 1) SELECT * FROM x INTO OUTFILE '%N%'", false},
	{"SELECT 1 UNION ALL SELECT 2 INTO OUTFILE '%N%'", false},
	{"(SELECT 1) INTO OUTFILE '%N%'", false},
	{"SELECT * FROM (SELECT 1 INTO OUTFILE '%N%')", false},
	{"SELECT * FROM generateRandom('x String') LIMIT 1 INTO OUTFILE '%N%'", false},
	{"INSERT INTO FUNCTION file('%N%', 'CSV', 'x UInt8') SELECT 1", false},
	{"INSERT INTO FUNCTION file('%T%', 'LineAsString') SELECT 'pwned'", false},
	{"INSERT INTO TABLE FUNCTION file('%R%', 'CSV', 'x UInt8') VALUES (1)", false},
	{"SELECT * FROM file('%T%', 'LineAsString')", false},
	{"SELECT file('%T%')", false},
	{"SELECT * FROM view(SELECT * FROM file('%T%', 'LineAsString'))", false},
	{"SELECT (SELECT any(line) FROM file('%T%', 'LineAsString'))", false},
	{"DESCRIBE file('%T%')", false},
	{"SELECT * FROM fileCluster('default', '%T%', 'LineAsString')", false},
	{"SELECT * FROM url('http://127.0.0.1:%PORT%/healthz', 'LineAsString')", false},
	{"INSERT INTO FUNCTION url('http://127.0.0.1:%PORT%/v1/reports', 'JSONEachRow', 'x UInt8') SELECT 1", false},
	{"SELECT * FROM s3('http://127.0.0.1:%PORT%/x', 'CSV', 'x UInt8')", false},
	{"SELECT * FROM remote('127.0.0.1:9000', system.one)", false},
	{"SELECT * FROM executable('touch %N%', 'TSV', 'x String')", false},
	{"SELECT * FROM sqlite('%N%', 't')", false},
	{"SELECT * FROM mysql('127.0.0.1:3306', 'db', 't', 'u', 'p')", false},
	{"SELECT * FROM input('x UInt8')", false},
	{"SELECT dictGet('hostile', 'x', 1)", false},
	{"SELECT * FROM merge('statepipe_p01', '^clients$') LIMIT 1", true},
	{"SELECT * FROM format(CSV, 'x UInt8', '1')", true},
	{"SELECT * FROM loop(numbers(3)) LIMIT 1", true},
	{"SELECT 1 SETTINGS readonly = 0", false},
	{"SELECT 1 SETTINGS readonly = 2, allow_ddl = 1", false},
	{"SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", false},
	{"SET readonly = 0", false},
	{"SELECT 1 FORMAT CSV", true},
	{"SELECT 1 FORMAT Native", true},
	{"INSERT INTO statepipe_p01.state_messages (client, serial) VALUES ('hostile-sql', 1)", false},
	{"INSERT INTO statepipe_p01.clients SELECT * FROM statepipe_p01.clients", false},
	{"CREATE TABLE statepipe_p01.hostile_t (x UInt8) ENGINE = Log", false},
	{"CREATE TABLE hostile_f (x UInt8) ENGINE = File(CSV, '%N%')", false},
	{"CREATE DATABASE hostile_db", false},
	{"CREATE TEMPORARY TABLE hostile_tmp (x UInt8)", false},
	{"ATTACH TABLE hostile_a (x UInt8) ENGINE = File(CSV, '%T%')", false},
	{"DETACH TABLE statepipe_p01.state_messages", false},
	{"DROP TABLE statepipe_p01.state_messages", false},
	{"TRUNCATE TABLE statepipe_p01.state_messages", false},
	{"ALTER TABLE statepipe_p01.state_messages DELETE WHERE 1", false},
	{"OPTIMIZE TABLE statepipe_p01.state_messages FINAL", false},
	{"RENAME TABLE statepipe_p01.clients TO statepipe_p01.hostile_clients", false},
	{"SYSTEM SHUTDOWN", false},
	{"SYSTEM KILL", false},
	{"SYSTEM FLUSH LOGS", false},
	{"SYSTEM STOP MERGES", false},
	{"SYSTEM DROP MARK CACHE", false},
	{"KILL QUERY WHERE 1", false},
	{"KILL MUTATION WHERE 1", false},
	{"BACKUP TABLE statepipe_p01.state_messages TO File('%N%')", false},
	{"BACKUP DATABASE statepipe_p01 TO Disk('default', 'hostile-backup')", false},
	{"GRANT ALL ON *.* TO default", false},
	{"CREATE USER hostile IDENTIFIED BY 'x'", false},
	{"USE system", false},
	{"CHECK TABLE statepipe_p01.state_messages", false},
	{"SELECT 1; INSERT INTO FUNCTION file('%N%', 'CSV', 'x UInt8') SELECT 1", false},
	{"SELECT 1; DROP TABLE statepipe_p01.state_messages", false},
	{"SELECT 1 /*;*/ ; SYSTEM SHUTDOWN", false},
	{"SELECT 1 /* */ INTO OUTFILE '%N%'", false},
	{"SELECT 1 -- a comment\nINTO OUTFILE '%N%'", false},
	{"SELECT 1) INTO OUTFILE '%N%' --", false},
	{"SELECT 1 FROM numbers(1)) SETTINGS readonly = 0 --", false},
	{"/*) */ SELECT 1 INTO OUTFILE '%N%'", false},
	{"SELECT ')' INTO OUTFILE '%N%'", false},
	{"SELECT 1) UNION ALL (SELECT * FROM file('%T%', 'LineAsString')", false},
	{"SELECT 1 FROM (SELECT 1)) INTO OUTFILE '%N%' /*", false},
	{"EXPLAIN AST SELECT 1", true},
	{"EXPLAIN SYNTAX INSERT INTO FUNCTION file('%N%') SELECT 1", false},
	{"EXPLAIN PIPELINE SELECT * FROM file('%T%', 'LineAsString')", false},
	{"EXPLAIN ESTIMATE SELECT 1 INTO OUTFILE '%N%'", false},
}

// attacksSQLWrite: every statement that could write (A6), with the admin token and, for the
// first ones, the reader token.
func (r *Run) attacksSQLWrite() {
	target := filepath.Join(r.sqlDir, "target.txt")
	const original = "original content: must never change\n"
	_ = os.WriteFile(target, []byte(original), 0o666)
	_ = os.Chmod(r.sqlDir, 0o777)
	st0, _ := os.Stat(target)
	r.attempt("A6", "writing SQL",
		fmt.Sprintf("%d statements with the admin token (and the first 12 with the reader token): INTO OUTFILE (TRUNCATE, APPEND, COMPRESSION, AND STDOUT, FORMAT) on SELECT/SHOW/DESCRIBE/EXISTS/EXPLAIN/WITH/UNION, file() as table function and function, url(), s3(), remote(), executable(), sqlite(), SETTINGS readonly=0, SET, INSERT, CREATE, ATTACH, DETACH, DROP, TRUNCATE, ALTER, RENAME, SYSTEM, KILL, BACKUP, GRANT, multi-statements, comment and parenthesis tricks; targets in %s (one existing file, new names) and relative to the site's working directory", len(writeQueries), r.sqlDir),
		"~105 requests, 120 s", "400 naming query for each; no file created or changed; tables and databases unchanged; the site alive", bounded(120*time.Second),
		func(ctx context.Context, a *Attempt) {
			tables := func() []string {
				// What analyst SQL may see of system.tables (a site's sandbox may scope it to
				// its own database): compared before and after, so the scope does not matter.
				res, err := r.sql(ctx, r.site.AdminToken, "SELECT database || '.' || name FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema') ORDER BY 1")
				if err != nil {
					res, err = r.sql(ctx, r.site.AdminToken, "SELECT name FROM system.tables ORDER BY 1")
				}
				if err != nil {
					a.note("cannot list tables through analyst SQL (%v): the check of tables relies on the row count", err)
					return nil
				}
				var out []string
				for _, row := range res.Rows {
					out = append(out, fmt.Sprint(row[0]))
				}
				return out
			}
			count := func() int {
				res, err := r.sql(ctx, r.site.AdminToken, "SELECT count() FROM statepipe_p01.state_messages")
				if err != nil || len(res.Rows) != 1 {
					a.fail("cannot count state_messages: %v", err)
					return -1
				}
				n, _ := toInt(res.Rows[0][0])
				return n
			}
			before, n0 := tables(), count()
			for i, wq := range writeQueries {
				q := strings.NewReplacer("%N%", filepath.Join(r.sqlDir, fmt.Sprintf("new-%02d.txt", i)), "%T%", target,
					"%R%", fmt.Sprintf("hostile-rel-%02d.txt", i), "%PORT%", strings.TrimPrefix(r.site.Listen, "127.0.0.1:")).Replace(wq.q)
				tokens := []string{r.site.AdminToken}
				if i < 12 {
					tokens = append(tokens, r.site.ReaderToken)
				}
				for _, tok := range tokens {
					c, cancel := context.WithTimeout(ctx, 30*time.Second)
					res := r.sqlRaw(c, tok, q)
					cancel()
					who := "admin"
					if tok == r.site.ReaderToken {
						who = "reader"
					}
					name := fmt.Sprintf("[%s] %s", who, clipped(q, 110))
					if wq.harmless && res.Status == 200 {
						a.answer(res)
						a.note("accepted, harmless (writes nothing): %s", clipped(q, 80))
						continue
					}
					a.judge(name, res, "query", 400)
				}
			}
			// A JSON escape cannot smuggle the words past the classifier either.
			res := r.sqlBody(ctx, r.site.AdminToken, []byte(`{"query":"SELECT 1 \u0049NTO OUTFILE '`+filepath.Join(r.sqlDir, "new-json.txt")+`'"}`))
			a.judge(`JSON-escaped \u0049NTO OUTFILE`, res, "query", 400)
			// What must hold afterwards.
			entries, _ := os.ReadDir(r.sqlDir)
			for _, e := range entries {
				if e.Name() != "target.txt" {
					a.fail("file created by SQL: %s", filepath.Join(r.sqlDir, e.Name()))
				}
			}
			if b, _ := os.ReadFile(target); string(b) != original {
				a.fail("target.txt changed by SQL: now %q", clipped(string(b), 100))
			}
			if st, err := os.Stat(target); err != nil || !st.ModTime().Equal(st0.ModTime()) {
				a.fail("target.txt touched (mtime changed or gone: %v)", err)
			}
			if entries, _ := os.ReadDir(r.site.Cwd); len(entries) > 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				a.fail("files created in the site's working directory: %v", names)
			}
			_ = filepath.WalkDir(r.site.Data, func(p string, d fs.DirEntry, err error) error {
				if err == nil && p != r.site.Data && strings.Contains(strings.ToLower(d.Name()), "hostile") {
					a.fail("file created under the data directory: %s", p)
				}
				return nil
			})
			after, n1 := tables(), count()
			if !slices.Equal(before, after) {
				a.fail("tables changed: before %v, after %v", before, after)
			}
			if n1 < n0 {
				a.fail("state_messages lost rows: %d before, %d after", n0, n1)
			}
			a.note("%d tables unchanged; state_messages %d → %d rows (legitimate load)", len(after), n0, n1)
		})
}

// Long queries: bounded by the site's own limits (--sql.timeout 30 s, --sql.max-rows-read 2e9).
const (
	longQuery = "SELECT count() FROM numbers(1999999999) WHERE sipHash64(number, 'hostile') = 0"
)

// attacksExpensiveSQL: expensive queries (A5a), the analyst slots held while reports must
// keep folding (A5b), clients that disconnect mid-query (A5c).
func (r *Run) attacksExpensiveSQL() {
	r.attempt("A5a", "expensive SQL, one at a time",
		"numbers(3e10) with sipHash64; sleepEachRow(1) × 100 and (0.03) × 100; 1 M rows; 100 × 1 MB strings; 99,000 rows × 600 B (a 60 MB answer); groupArray of 10 GB; uniqExact over 1.5e9; a 30 s scan of 2e9 rows; a 1e10-row cross join; a recursive CTE; system.numbers; 1 MiB of parentheses and of 1+1+…",
		"15 queries, 40 s each, 300 s", "400 naming query with the limit reached, or 200 within the limits; never 5xx; the site alive", bounded(300*time.Second),
		func(ctx context.Context, a *Attempt) {
			qs := []struct {
				q    string
				want []int
			}{
				{"SELECT count() FROM numbers(3e10) WHERE sipHash64(number) = 0", []int{400}},
				{"SELECT sleepEachRow(1) FROM numbers(100)", []int{400}},
				{"SELECT sleepEachRow(0.03) FROM numbers(100)", []int{200}},
				{"SELECT * FROM numbers(1000000)", []int{400}},
				{"SELECT repeat('x', 1000000) FROM numbers(100)", []int{400}},
				{"SELECT number, repeat('x', 600) FROM numbers(99000)", []int{200, 400}},
				{"SELECT length(groupArray(repeat('x', 1000))) FROM numbers(10000000)", []int{400}},
				{"SELECT uniqExact(number) FROM numbers(1500000000)", []int{400, 200}},
				{longQuery, []int{400, 200}},
				{"SELECT count() FROM numbers(100000) AS a, numbers(100000) AS b WHERE a.number + b.number = 3", []int{400, 200}},
				{"WITH RECURSIVE t AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM t) SELECT count() FROM t", []int{400}},
				{"SELECT count() FROM system.numbers", []int{400}},
				{"SELECT " + strings.Repeat("(", 400000) + "1" + strings.Repeat(")", 400000), []int{400}},
				{"SELECT " + strings.Repeat("1+", 400000) + "1", []int{400, 200}},
				{"SELECT match(repeat('a', 100000), '(a+)+b')", []int{200, 400}},
			}
			for _, q := range qs {
				c, cancel := context.WithTimeout(ctx, 40*time.Second)
				start := time.Now()
				peak0 := r.site.MarkPeakKeep()
				res := r.sqlRaw(c, r.site.ReaderToken, q.q)
				cancel()
				a.judge(fmt.Sprintf("%s (%.1fs, %d bytes answered, RSS +%s)", clipped(q.q, 90), time.Since(start).Seconds(), len(res.Body), mib(r.site.SubPeak()-peak0)), res, "", q.want...)
			}
		})

	var vis *Agent
	r.attempt("A5b", "expensive SQL holding every analyst slot while reports must fold",
		fmt.Sprintf("2 × %q (admin and reader tokens, 30 s each: --sql.timeout) and meanwhile 4 more at once; a legitimate report toggling KB-VISIBLE every cycle, polled in the compliance report", longQuery),
		"6 queries + visibility probes, 45 s", "the 2 run to the time limit (400) or finish (200); the 4 extra 503 with Retry-After; each report visible in the compliance report within 5 s; compliance answered", bounded(45*time.Second),
		func(ctx context.Context, a *Attempt) {
			vis, _ = r.newAgent(ctx, "probe-visible", nil)
			if vis == nil {
				a.fail("cannot enrol the visibility probe")
				return
			}
			var wg sync.WaitGroup
			for _, tok := range []string{r.site.AdminToken, r.site.ReaderToken} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, cancel := context.WithTimeout(ctx, 45*time.Second)
					defer cancel()
					start := time.Now()
					res := r.sqlRaw(c, tok, longQuery)
					a.judge(fmt.Sprintf("long query (%.1fs)", time.Since(start).Seconds()), res, "", 200, 400)
				}()
			}
			time.Sleep(1500 * time.Millisecond)
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, cancel := context.WithTimeout(ctx, 45*time.Second)
					defer cancel()
					res := r.sqlRaw(c, r.site.ReaderToken, fmt.Sprintf("SELECT %d", i))
					if a.judge("extra query while both slots are taken", res, "", 503) && res.Header.Get("Retry-After") == "" {
						a.fail("503 without Retry-After")
					}
				}()
			}
			var lats, complianceLats []time.Duration
			state := int32(2)
			for cycle := 0; ctx.Err() == nil && cycle < 8; cycle++ {
				state = 5 - state // 2, 3, 2, …
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				res := vis.report(c, nil, vis.msg("KB-VISIBLE", state))
				cancel()
				if res.Status != 200 {
					a.fail("visibility probe's report: %s %s", res.Key(), res.Message)
					continue
				}
				sent := time.Now()
				seen := false
				for time.Since(sent) < 15*time.Second && ctx.Err() == nil {
					c, cancel := context.WithTimeout(ctx, 10*time.Second)
					cs := time.Now()
					cr := r.get(c, r.site.ReaderToken, "/v1/reports/compliance?updates=KB-VISIBLE")
					cancel()
					complianceLats = append(complianceLats, time.Since(cs))
					var rep struct {
						Updates []UpdateCounts `json:"updates"`
					}
					if cr.Status == 200 && jsonUnmarshal(cr.Body, &rep) == nil && len(rep.Updates) == 1 {
						u := rep.Updates[0]
						if (state == 3 && u.Installed == 1 && u.Required == 0) || (state == 2 && u.Required == 1 && u.Installed == 0) {
							seen = true
							break
						}
					} else if cr.Status != 200 && !(cr.Status == 404 && strings.Contains(cr.Key(), "field=updates")) {
						// 404 naming updates: no report of KB-VISIBLE folded yet (the site does
						// not know the update until one is), which is what is being waited for.
						a.fail("compliance report during the queries: %s %s", cr.Key(), cr.Message)
					}
					time.Sleep(100 * time.Millisecond)
				}
				lat := time.Since(sent)
				lats = append(lats, lat)
				if !seen {
					a.fail("cycle %d: the report was not visible in the compliance report after %s", cycle, lat.Round(time.Millisecond))
				} else if lat > 5*time.Second {
					a.fail("cycle %d: the report took %s to be visible (goal ≤ 5 s)", cycle, lat.Round(time.Millisecond))
				}
				time.Sleep(2 * time.Second)
			}
			wg.Wait()
			a.note("visibility of a legitimate report while the queries ran: %v", roundAll(lats))
			slices.Sort(complianceLats)
			if len(complianceLats) > 0 {
				a.note("compliance report answered %d times, slowest %s", len(complianceLats), complianceLats[len(complianceLats)-1].Round(time.Millisecond))
			}
		})

	r.attempt("A5c", "clients disconnecting mid-query",
		fmt.Sprintf("5 rounds: %q, the client gone after 1.5 s; then how long until both analyst slots serve SELECT 1 again, and the site's CPU in the 2 s after", longQuery),
		"5 rounds, 60 s", "the abandoned query killed: both slots free within 3 s, CPU back to idle", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			for round := range 5 {
				c, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
				res := r.sqlRaw(c, r.site.ReaderToken, longQuery)
				cancel()
				a.answer(res)
				gone := time.Now()
				cpu0 := procCPU(r.site.PID())
				freed := false
				for time.Since(gone) < 10*time.Second && ctx.Err() == nil {
					var wg sync.WaitGroup
					var okN int
					var mu sync.Mutex
					for range 2 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							c, cancel := context.WithTimeout(ctx, 5*time.Second)
							defer cancel()
							if res := r.sqlRaw(c, r.site.ReaderToken, "SELECT 1"); res.Status == 200 {
								mu.Lock()
								okN++
								mu.Unlock()
							}
						}()
					}
					wg.Wait()
					if okN == 2 {
						freed = true
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				took := time.Since(gone)
				time.Sleep(2 * time.Second)
				cpu := (procCPU(r.site.PID()) - cpu0) / (took.Seconds() + 2)
				a.note("round %d: both slots free %s after the client left; site CPU %.0f%% meanwhile", round+1, took.Round(time.Millisecond), cpu*100)
				if !freed || took > 3*time.Second {
					a.fail("round %d: the slots were not both free within 3 s of the client leaving (%s, freed=%v)", round+1, took.Round(time.Millisecond), freed)
				}
			}
		})
	_ = vis
}

// procCPU returns the CPU seconds (user + system) process pid used so far.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndex(s, ")")
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100 // USER_HZ
}

func roundAll(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond).String()
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var _ = url.QueryEscape
var _ = schema.MediaJSON
