package plugin_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests share one fixture: a real statepipe (`statepipe run --topology`, embedded broker
// and chDB) built from this repository's cmd/statepipe, hosting the central site CEN and P01
// below it (testdata/fixture/topology.yaml), loaded with testdata/fixture: reference data
// imported at CEN, the clients' reports at P01. Tests that need it skip, saying so, without
// chDB's library (and fail when STATEPIPE_REQUIRE_CHDB=1).

var update = flag.Bool("update", false, "rewrite the golden frames in testdata/*.jsonc")

const (
	readerToken     = "reader-token-of-the-plugin-tests"
	adminToken      = "admin-token-of-the-plugin-tests"
	fixtureSiteCode = "P01" // the clients' site; the datasource of most tests asks it
	centralSite     = "CEN" // the root: a datasource without a site asks it
)

// The fixture's known counts (testdata/fixture): 6 clients pc-01…pc-06 in C-ALL.
const (
	fixtureList       = "L-2026-11"
	fixtureCollection = "C-ALL"
	fixtureDeployment = "D-2026-11"
	fixtureUpdate     = "KB5046617"
	// computers compliant with L-2026-11 in C-ALL: pc-01, pc-04, pc-05 of 6
	fixtureOverallPct = 50.0
)

// fixtureStates1 is D-2026-11's "States 1": clients per 301 state (the others 0).
var fixtureStates1 = map[int64]int64{0: 1, 1: 1, 4: 2, 6: 1, 9: 1}

var (
	root, _      = filepath.Abs("../../../..") // the repository
	pluginDir, _ = filepath.Abs("../..")       // dashboards/plugin

	siteOnce sync.Once
	shared   *fixture

	cleanupMu sync.Mutex
	cleanups  []func()
)

type fixture struct {
	URL  string
	skip string // why tests needing the site skip
	err  error
}

func atExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	os.Exit(code)
}

// fixtureSite returns the shared fixture site, started on first use.
func fixtureSite(t testing.TB) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a statepipe site (-short)")
	}
	siteOnce.Do(func() { shared = startFixture() })
	if shared.skip != "" {
		if os.Getenv("STATEPIPE_REQUIRE_CHDB") == "1" {
			t.Fatalf("chDB is required (STATEPIPE_REQUIRE_CHDB=1): %s", shared.skip)
		}
		t.Skip(shared.skip)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startFixture() *fixture {
	lib := os.Getenv("CHDB_LIB_PATH")
	if lib == "" {
		lib = filepath.Join(root, ".deps/chdb/libchdb.so")
	}
	if _, err := os.Stat(lib); err != nil {
		return &fixture{skip: fmt.Sprintf("no chDB library at %s (make deps, or set CHDB_LIB_PATH): the fixture site cannot start", lib)}
	}
	dir, err := os.MkdirTemp("", "statepipe-plugin-fixture-")
	if err != nil {
		return &fixture{err: err}
	}
	atExit(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "statepipe")
	build := exec.Command("go", "build", "-o", bin, "./cmd/statepipe")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return &fixture{err: fmt.Errorf("cannot build statepipe: %v\n%s", err, out)}
	}
	httpPort, err := freePort()
	if err != nil {
		return &fixture{err: err}
	}
	kafkaPort, err := freePort()
	if err != nil {
		return &fixture{err: err}
	}
	logf, err := os.Create(filepath.Join(dir, "site.log"))
	if err != nil {
		return &fixture{err: err}
	}
	cmd := exec.Command(bin, "run", "--data", filepath.Join(dir, "data"),
		"--topology", filepath.Join(pluginDir, "testdata/fixture/topology.yaml"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--kafka.listen", fmt.Sprintf("127.0.0.1:%d", kafkaPort),
		"--reader-token", readerToken, "--admin-token", adminToken,
		// the fixture's client clocks are fixed (November 2026) so the goldens are: accept them
		// however old they get (the default is 5 years)
		"--ingest.max-message-age", "876000h")
	cmd.Env = append(os.Environ(), "CHDB_LIB_PATH="+lib, "STATEPIPE_READER_TOKEN=", "STATEPIPE_ADMIN_TOKEN=")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return &fixture{err: fmt.Errorf("cannot start statepipe: %w", err)}
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	atExit(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	f := &fixture{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort)}
	siteLog := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(f.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			return &fixture{err: fmt.Errorf("statepipe exited before it was ready:\n%s", siteLog())}
		default:
		}
		if time.Now().After(deadline) {
			return &fixture{err: fmt.Errorf("statepipe not ready after 120 s:\n%s", siteLog())}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := loadFixture(f.URL); err != nil {
		return &fixture{err: fmt.Errorf("cannot load the fixture: %w\n%s", err, siteLog())}
	}
	return f
}

// loadFixture imports the reference data (waiting for the fold) and sends each client's
// report with wait=true, so every report read next counts them.
func loadFixture(base string) error {
	dir := filepath.Join(pluginDir, "testdata/fixture")
	for _, kind := range []string{"catalog", "lists", "collections", "deployments"} {
		body, err := os.ReadFile(filepath.Join(dir, kind+".jsonl"))
		if err != nil {
			return err
		}
		var ans struct {
			Folded bool `json:"folded"`
		}
		if err := post(base+"/v1/ref/"+kind, "application/x-ndjson", adminToken, body, &ans); err != nil {
			return fmt.Errorf("import %s: %w", kind, err)
		}
		if !ans.Folded {
			return fmt.Errorf("import %s: not folded", kind)
		}
	}
	// The reference data flows down from CEN: P01 must hold it before its clients report,
	// so its counts per collection and list are made with it.
	for deadline := time.Now().Add(60 * time.Second); ; {
		var ans struct {
			Rows [][]json.RawMessage `json:"rows"`
		}
		err := post(base+"/v1/sql?site="+fixtureSiteCode, "text/plain", readerToken, []byte(
			"SELECT (SELECT count() FROM v_updates) + (SELECT count() FROM v_update_lists) + (SELECT count() FROM v_collections) + (SELECT count() FROM v_deployments)"), &ans)
		if err == nil && len(ans.Rows) == 1 && string(ans.Rows[0][0]) == "7" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the reference data did not reach %s within 60 s (%v, %v)", fixtureSiteCode, err, ans.Rows)
		}
		time.Sleep(250 * time.Millisecond)
	}
	reports, err := os.ReadFile(filepath.Join(dir, "reports.jsonl"))
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(reports))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ans struct {
			Folded bool `json:"folded"`
		}
		if err := post(base+"/v1/reports?wait=true", "application/json", "", line, &ans); err != nil {
			return fmt.Errorf("report %.60s: %w", line, err)
		}
		if !ans.Folded {
			return fmt.Errorf("report %.60s: not folded", line)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	// CEN counts P01's clients once P01's cells reached it: wait for it once here, so every
	// test (and the dashboards' queries, which do not wait) sees the whole fixture at CEN.
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/reports/compliance?site="+centralSite+"&wait=true", nil)
	req.Header.Set("Authorization", "Bearer "+readerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var c struct {
		Computers struct {
			Total int64 `json:"total"`
		} `json:"computers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.Computers.Total != 6 {
		return fmt.Errorf("%s does not count the fixture's 6 clients after waiting (%v, %d)", centralSite, err, c.Computers.Total)
	}
	return nil
}

func post(url, ctype, token string, body []byte, out any) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ctype)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return errors.New("answer not JSON: " + string(b))
	}
	return nil
}
