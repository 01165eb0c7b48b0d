package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/bench"
)

// finish: the load stops, the oracle is checked, SIGTERM during a running query (A5d), a
// restart on the same data directory, one more report per machine, the oracle again.
func (r *Run) finish() {
	r.fleet.Stop()
	r.checks = append(r.checks, r.checkOracle(r.ctx, "end of the attacks (load stopped)", 120*time.Second))
	r.attempt("A5d", "SIGTERM during a running analyst query, then a restart",
		fmt.Sprintf("%q running for 2 s, then SIGTERM to the site; then `statepipe run` again on the same data directory and one report from every machine", longQuery),
		"one SIGTERM, 30 s to exit; restart within 180 s", "exit within about 10 s (--http.shutdown-grace cancels the query, --http.shutdown-timeout bounds the stop), status 0; the query answered 503 or cut; the site restarts and acknowledges every machine's report",
		bounded(300*time.Second),
		func(ctx context.Context, a *Attempt) {
			var wg sync.WaitGroup
			var qres Resp
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				qres = r.sqlRaw(c, r.site.ReaderToken, longQuery)
			}()
			time.Sleep(2 * time.Second)
			r.down.Store(true)
			took, exitErr, ok := r.site.Term(30 * time.Second)
			wg.Wait()
			a.answer(qres)
			a.note("the running query was answered %s %s", qres.Key(), clipped(qres.Message, 120))
			a.note("SIGTERM → exit in %s, exit status: %v", took.Round(time.Millisecond), exitOrZero(exitErr))
			if !ok {
				a.fail("the site did not exit within 30 s of SIGTERM (killed)")
			} else if took > 12*time.Second {
				a.fail("the site took %s to exit after SIGTERM (goal about 10 s)", took.Round(time.Millisecond))
			}
			if exitErr != nil {
				a.fail("exit status after SIGTERM: %v (log: %s)", exitErr, tail(r.site.LogPath(), 400))
			}
			if err := r.site.Start(); err != nil {
				a.fail("restart: %v", err)
				return
			}
			t, err := r.site.WaitHealthy(180 * time.Second)
			if err != nil {
				a.fail("restart: %v", err)
				return
			}
			r.down.Store(false)
			a.note("restarted: /healthz 200 after %s", t.Round(time.Millisecond))
			var sent sync.WaitGroup
			for _, lc := range r.fleet.clients {
				sent.Add(1)
				go func() { defer sent.Done(); r.fleet.send(lc, r.fleet.next(lc)) }()
			}
			sent.Wait()
			a.note("every machine reported once more after the restart")
		})
	r.checks = append(r.checks, r.checkOracle(r.ctx, "after SIGTERM and restart (one more report per machine)", 120*time.Second))
}

func exitOrZero(err error) string {
	if err == nil {
		return "0"
	}
	return err.Error()
}

// machine describes this host.
func machine() map[string]any {
	m := map[string]any{"nproc": runtime.NumCPU(), "os": runtime.GOOS + "/" + runtime.GOARCH, "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m["model"] = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	m["memory_bytes"] = bench.ProcMeminfo("MemTotal")
	return m
}

func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	_, _ = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// source says which tree the binary was built from (read-only git).
func source() string {
	head, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	st, _ := exec.Command("git", "status", "--short").Output()
	n := 0
	if s := strings.TrimSpace(string(st)); s != "" {
		n = len(strings.Split(s, "\n"))
	}
	return fmt.Sprintf("%s with %d changed or new files in the working tree", strings.TrimSpace(string(head)), n)
}

// write writes result.json and report.md; it returns 1 when anything failed.
func (r *Run) write() int {
	failed := 0
	for _, a := range r.attempts {
		if a.Verdict != "PASS" {
			failed++
		}
	}
	oracleOK := len(r.checks) > 0
	for _, c := range r.checks {
		oracleOK = oracleOK && c.Equal
	}
	crashes := r.site.Crashes()
	st, _ := os.Stat(r.site.Bin)
	res := map[string]any{
		"machine":          machine(),
		"binary":           map[string]any{"path": r.site.Bin, "sha256": fileSHA256(r.site.Bin), "built": st.ModTime().UTC(), "source": source()},
		"args":             redactArgs(r.site.Args()),
		"started":          r.started.UTC(),
		"duration_seconds": time.Since(r.started).Seconds(),
		"legit": map[string]any{"machines": len(r.fleet.clients), "reports_acknowledged": r.fleet.sent.Load(),
			"reports_refused": r.fleet.failed.Load(), "refusals": r.fleet.Errors()},
		"attempts":            r.attempts,
		"oracle_checks":       r.checks,
		"oracle_ok":           oracleOK,
		"unexpected_exits":    crashes,
		"failed_attempts":     failed,
		"peak_rss_bytes":      r.site.allPeak.Load(),
		"host_loadavg_start":  r.loadStart,
		"host_others_cpu_pct": othersOverAttempts(r.attempts),
		"pass":                failed == 0 && oracleOK && len(crashes) == 0,
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	_ = os.WriteFile(filepath.Join(r.out, "result.json"), b, 0o644)
	_ = os.WriteFile(filepath.Join(r.out, "report.md"), []byte(r.markdown(res)), 0o644)
	r.logf("wrote %s: %d of %d attempts failed, oracle equal at every check: %v, unexpected exits: %d",
		r.out, failed, len(r.attempts), oracleOK, len(crashes))
	if res["pass"].(bool) {
		return 0
	}
	return 1
}

// redactArgs hides the tokens.
func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	for i := range out {
		if i > 0 && (out[i-1] == "--admin-token" || out[i-1] == "--reader-token") {
			out[i] = "(random)"
		}
	}
	return out
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

func answersCell(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, "; ")
}

func (r *Run) markdown(res map[string]any) string {
	var b strings.Builder
	m := res["machine"].(map[string]any)
	bin := res["binary"].(map[string]any)
	fmt.Fprintf(&b, "# Hostile run against `statepipe run` — %s\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Issue 11 (\"one request must never crash, freeze, fill or fool a site\"): a repeatable, bounded hostile run against the built binary. Tool and attack list: [`bench/hostile/`](../../hostile/README.md).\n\n")
	fmt.Fprintf(&b, "* **Machine:** %d vCPU (`nproc`), %v, %s memory; %v, %v\n", m["nproc"], m["model"], gib(m["memory_bytes"].(int64)), m["os"], m["go"])
	fmt.Fprintf(&b, "* **Binary:** `%s`, sha256 `%.16s…`, built %s from %s\n", bin["path"], bin["sha256"], bin["built"].(time.Time).Format(time.RFC3339), bin["source"])
	fmt.Fprintf(&b, "* **Site:** `statepipe %s` (loopback only; tokens random per run)\n", strings.Join(res["args"].([]string), " "))
	fmt.Fprintf(&b, "* **Legitimate load throughout:** %d machines enrolled through the SDK (`client.Enroll`), each sending a signed report every 1–3 s (a full scan first, then deltas of 500 + 402 states, full reports that drop keys, heartbeats), retried until acknowledged; plus a canary (a signed report every second, one attempt, 5 s deadline) and `/healthz` every 500 ms (2 s deadline). %d reports acknowledged, %d refused.\n",
		len(r.fleet.clients), r.fleet.sent.Load(), r.fleet.failed.Load())
	fmt.Fprintf(&b, "* **Duration:** %.0f s; site peak RSS %s over the run. Host load average at the start: %s; other processes used %.0f%% of the machine's CPUs over the attempts' time.\n\n",
		res["duration_seconds"], mib(r.site.allPeak.Load()), r.loadStart, res["host_others_cpu_pct"])

	failed := res["failed_attempts"].(int)
	fmt.Fprintf(&b, "## Result\n\n")
	fmt.Fprintf(&b, "**%d of %d attempts passed**; oracle equal at every check: **%v**; unexpected exits of the site: **%d**.\n\n", len(r.attempts)-failed, len(r.attempts), res["oracle_ok"], len(res["unexpected_exits"].([]string)))
	fmt.Fprintf(&b, "Columns: *during* = `/healthz` probes ok/total (2 s deadline) and signed probe reports ok/total (5 s deadline, one attempt; their p99) from the attempt's start to 2 s after its end — the canary every second plus a probe every 250 ms started with the attempt; *legit p99* = the legitimate machines' report latency (SDK, retries included) for reports started in that window; RSS of the site from `/proc/PID/status` (VmRSS): before / peak / after (1.5 s after the attempt); *others' CPU* = the share of the machine's CPUs used meanwhile by processes other than the site and this program (other work competing with the site, from /proc/stat).\n\n")
	fmt.Fprintf(&b, "| id | attack | sent | bound | answers | alive | during: healthz · canary | legit p99 (n) | RSS before / peak / after | others' CPU | verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, a := range r.attempts {
		w := a.Window
		fmt.Fprintf(&b, "| %s | %s | %s | %s, took %.1f s | %s | %v | %d/%d · %d/%d (p99 %.0f ms) | %.0f ms (%d) | %s / %s / %s | %.0f%% | **%s** |\n",
			a.ID, cell(a.Attack), cell(clipped(a.Sent, 400)), cell(a.Bound), a.Seconds, cell(clipped(answersCell(a.Answers), 500)), yes(a.Alive),
			w.HealthOK, w.HealthN, w.CanaryOK, w.CanaryN, w.CanaryP99Ms, w.LegitP99Ms, w.LegitN, mib(a.RSSBefore), mib(a.RSSPeak), mib(a.RSSAfter), a.OthersCPU, a.Verdict)
	}
	fmt.Fprintf(&b, "\n## Oracle checks\n\nThe oracle is computed from every report the site acknowledged (legitimate machines, canary, probes, and any attack report that was accepted): distinct serials per client against `SELECT client, count() FROM statepipe_p01.state_messages FINAL GROUP BY client` (admin token), and per update installed / required / not required / unknown / total against `GET /v1/reports/compliance?updates=…` (reader token). Senders are paused during a check; it retries for up to 120 s while the projector catches up.\n\n")
	fmt.Fprintf(&b, "| when | equal | clients | messages oracle / site | updates | waited | differences |\n|---|---|---|---|---|---|---|\n")
	for _, c := range r.checks {
		fmt.Fprintf(&b, "| %s | **%v** | %d | %d / %d | %d | %.1f s | %s |\n", cell(c.When), c.Equal, c.Clients, c.OracleMessages, c.SiteMessages, c.Updates, c.WaitedSeconds, cell(clipped(strings.Join(c.Differences, "; "), 600)))
	}
	if cr := res["unexpected_exits"].([]string); len(cr) > 0 {
		fmt.Fprintf(&b, "\n## Unexpected exits of the site\n\n")
		for _, c := range cr {
			fmt.Fprintf(&b, "* %s\n", clipped(c, 1500))
		}
	}
	fmt.Fprintf(&b, "\n## Failed verdicts\n\n")
	any := false
	for _, a := range r.attempts {
		if a.Verdict == "PASS" {
			continue
		}
		any = true
		fmt.Fprintf(&b, "### %s — %s\n\nSent: %s\n\nExpected: %s\n\n", a.ID, a.Attack, a.Sent, a.Expect)
		for _, f := range a.Failures {
			fmt.Fprintf(&b, "* %s\n", clipped(f, 1200))
		}
		b.WriteString("\n")
	}
	if !any {
		b.WriteString("None.\n")
	}
	fmt.Fprintf(&b, "\n## Expected answers and notes per attempt\n\n")
	for _, a := range r.attempts {
		fmt.Fprintf(&b, "* **%s** expected: %s. After: %s.", a.ID, a.Expect, a.After)
		if len(a.Notes) > 0 {
			fmt.Fprintf(&b, " Notes: %s.", strings.Join(a.Notes, "; "))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n## Every judged request\n\n")
	for _, a := range r.attempts {
		if len(a.Probes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "<details><summary>%s — %d requests judged, %d as expected</summary>\n\n| request | want | got | ok |\n|---|---|---|---|\n", a.ID, len(a.Probes), okCount(a.Probes))
		for _, p := range a.Probes {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(clipped(p.Name, 160)), cell(p.Want), cell(clipped(p.Got, 220)), yes(p.OK))
		}
		b.WriteString("\n</details>\n\n")
	}
	fmt.Fprintf(&b, "## How to re-run\n\n```sh\ncd /work/main   # the repository\nCHDB_LIB_PATH=$PWD/.deps/chdb/libchdb.so go build -o /tmp/hostile-bin/statepipe ./cmd/statepipe\ngo run ./bench/hostile --bin /tmp/hostile-bin/statepipe --out bench/results/hostile-YYYYMMDD\n```\n\n`run.log` has the run's progress, `site-N.log` each start of the site.\n")
	return b.String()
}

func okCount(ps []Probe) int {
	n := 0
	for _, p := range ps {
		if p.OK {
			n++
		}
	}
	return n
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// othersOverAttempts is the share of the machine's CPUs other processes used, over the
// attempts' time (a restart of the site makes a span across it unreliable, so the run is
// measured attempt by attempt).
func othersOverAttempts(as []*Attempt) float64 {
	var sum, secs float64
	for _, a := range as {
		sum += a.OthersCPU * a.Seconds
		secs += a.Seconds
	}
	if secs == 0 {
		return 0
	}
	return sum / secs
}
