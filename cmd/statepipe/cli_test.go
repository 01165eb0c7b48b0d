package main

// Tests of the command line as a user meets it: help, typos, flags after arguments, the
// wording of answers, and the refusals and hints of the client verbs. The binary tests run
// the built statepipe against small fake sites (httptest): no broker or engine.

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// The command list's summaries start in one column, whatever the length of the names.
func TestCLIUsageAligned(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	usage(&b)
	col := -1
	rows := 0
	for _, line := range strings.Split(b.String(), "\n") {
		for _, c := range commands {
			if !strings.HasPrefix(line, "  "+c.name+" ") {
				continue
			}
			rows++
			at := strings.Index(line, c.summary)
			if col == -1 {
				col = at
			}
			if at != col {
				t.Errorf("summary of %s starts at column %d, not %d:\n%s", c.name, at, col, b.String())
			}
		}
	}
	if rows != len(commands) {
		t.Errorf("%d rows for %d commands:\n%s", rows, len(commands), b.String())
	}
}

func TestVerbSuggestions(t *testing.T) {
	t.Parallel()
	top := make([]string, len(commands))
	for i, c := range commands {
		top[i] = c.name
	}
	verbs := []string{"enroll", "send", "rotate", "revoke"}
	for _, c := range []struct {
		typed string
		names []string
		want  []string
	}{
		{"reprot", top, []string{"report"}}, // two letters swapped: one edit
		{"clinet", top, []string{"client"}},
		{"colections", top, []string{"collections"}},
		{"deploy", top, []string{"deployments"}}, // a prefix
		{"sq", top, []string{"sql"}},
		{"xyzzy", top, nil},
		{"sned", verbs, []string{"send"}},
		{"enrol", verbs, []string{"enroll"}}, // British spelling
		{"rovoke", verbs, []string{"revoke"}},
		{"rotat", verbs, []string{"rotate"}},
		{"re", verbs, []string{"revoke"}},
		{"x", verbs, nil},
		{"rotste", []string{"rotate", "rotete"}, []string{"rotate", "rotete"}}, // ties: both
	} {
		if got := suggest(c.typed, c.names); !slices.Equal(got, c.want) {
			t.Errorf("suggest(%q) = %q, want %q", c.typed, got, c.want)
		}
	}
	if got := quoteOr([]string{"a", "b", "c"}); got != `"a", "b" or "c"` {
		t.Errorf("quoteOr = %s", got)
	}
}

// Flags stand before, between or after the positional arguments; "--" ends the flags.
func TestCLIParseFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args    []string
		url     string
		pos     []string
		wantErr string
	}{
		{args: []string{"f.jsonl", "--url", "http://a"}, url: "http://a", pos: []string{"f.jsonl"}},
		{args: []string{"--url", "http://a", "f.jsonl"}, url: "http://a", pos: []string{"f.jsonl"}},
		{args: []string{"--url=http://a", "f.jsonl", "--json"}, url: "http://a", pos: []string{"f.jsonl"}},
		{args: []string{"--", "-f.jsonl"}, url: "http://default", pos: []string{"-f.jsonl"}},
		{args: []string{"--url", "http://a"}, wantErr: "FILE is missing"},
		{args: []string{"a", "b"}, wantErr: `unexpected argument "b"`},
		{args: []string{"a", "--bogus"}, wantErr: "flag provided but not defined: -bogus"},
	} {
		fs := newFlags("test verb", "[flags] FILE")
		url := fs.String("url", "http://default", "")
		fs.Bool("json", false, "")
		pos, err := fs.parse(c.args, "FILE")
		var ue *usageError
		switch {
		case c.wantErr != "":
			if !errors.As(err, &ue) || !strings.Contains(ue.msg, c.wantErr) || !strings.Contains(ue.usage, "usage: statepipe test verb [flags] FILE") {
				t.Errorf("%q: err %v, want a usage error saying %q with the usage line", c.args, err, c.wantErr)
			}
		case err != nil || *url != c.url || !slices.Equal(pos, c.pos):
			t.Errorf("%q: url %q, positional %q, err %v; want %q, %q", c.args, *url, pos, err, c.url, c.pos)
		}
	}
}

// statepipe runs the built binary with args; it returns stdout, stderr and the exit code.
func statepipe(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("statepipe %q: %v", args, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// -h prints the commands (exit 0); a typo'd verb or sub-verb exits 2 naming the closest.
func TestBinaryCLIHelpAndTypos(t *testing.T) {
	t.Parallel()
	out, _, code := statepipe(t, "-h")
	if code != 0 || !strings.Contains(out, "  collections  collections apply FILE.jsonl") {
		t.Errorf("statepipe -h: exit %d, stdout:\n%s", code, out)
	}
	for _, c := range []struct{ args, want string }{
		{"reprot", `statepipe: unknown command "reprot"; did you mean "report"?`},
		{"client sned x.json", `statepipe client: unknown command "sned"; did you mean "send"?`},
		{"catalog improt f.jsonl", `statepipe catalog: unknown command "improt"; did you mean "import"?`},
		{"lists aply f.jsonl", `statepipe lists: unknown command "aply"; did you mean "apply"?`},
		{"dlq lst", `statepipe dlq: unknown command "lst"; did you mean "list"?`},
		{"bench smok", `statepipe bench: unknown command "smok"; did you mean "smoke"?`},
		{"projector rebiuld", `statepipe projector: unknown command "rebiuld"; did you mean "rebuild"?`},
		{"client send", "statepipe client send: REPORT.json is missing\nusage: statepipe client send"},
		{"client enroll --site P01", "statepipe client enroll: --site, --id and --out are required"},
		{"client", "statepipe client: a command is missing\nusage: statepipe client COMMAND"},
	} {
		_, errOut, code := statepipe(t, strings.Fields(c.args)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("statepipe %s: exit %d, stderr:\n%s\nwant exit 2 and %q", c.args, code, errOut, c.want)
		}
	}
}

// Every verb's -h prints its usage and flags with their defaults, and exits 0.
func TestBinaryCLIVerbHelp(t *testing.T) {
	t.Parallel()
	verbs := []string{"run", "ingest", "projector", "projector rebuild", "sql", "resync",
		"client enroll", "client send", "client rotate", "client revoke",
		"catalog import", "lists apply", "collections apply", "deployments apply",
		"dlq list", "dlq replay", "replicator", "bench run", "bench capacity", "bench smoke", "bench ingest", "bench replot"}
	for _, parent := range []string{"client", "catalog", "dlq", "bench", "projector"} {
		verbs = append(verbs, parent+" help")
	}
	for _, v := range verbs {
		args := strings.Fields(v)
		if args[len(args)-1] != "help" {
			args = append(args, "-h")
		}
		out, errOut, code := statepipe(t, args...)
		if code != 0 || !strings.Contains(strings.ToLower(out+errOut), "usage") {
			t.Errorf("statepipe %s: exit %d, output:\n%s%s\nwant exit 0 and the usage", strings.Join(args, " "), code, out, errOut)
		}
	}
	out, _, _ := statepipe(t, "catalog", "import", "-h")
	if !strings.Contains(out, "usage: statepipe catalog import [--url URL] [--site CODE] [--admin-token T] [--no-wait] FILE.jsonl") ||
		!strings.Contains(out, `(default "http://127.0.0.1:8080")`) {
		t.Errorf("catalog import -h:\n%s\nwant the usage line and the defaults", out)
	}
}

// refSite is a fake site's /v1/ref: it answers as ingest does when the admin token is right.
func refSite(t *testing.T, adminToken string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			writeAPIError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, "this endpoint needs a token (Authorization: Bearer): "+r.URL.Path, "Authorization")
			return
		}
		recs, errs := schema.ParseRefLines(schema.RefKind(strings.TrimPrefix(r.URL.Path, "/v1/ref/")), r.Body)
		if len(errs) > 0 {
			t.Errorf("the site got bad lines: %v", errs)
		}
		_ = json.NewEncoder(w).Encode(ingest.RefAck{Imported: len(recs)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Flags after the file are taken; the answer counts records and lines in words that agree
// with the number; a refusal for want of the admin token says how to give it.
func TestBinaryCLIRefImport(t *testing.T) {
	t.Parallel()
	srv := refSite(t, "s3cret")
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.jsonl"), filepath.Join(dir, "two.jsonl")
	line := func(id string) string {
		return `{"id":"` + id + `","title":"t","first_synced":"2026-01-01T00:00:00Z"}` + "\n"
	}
	if err := os.WriteFile(one, []byte(line("KB1")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte(line("KB1")+line("KB2")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := statepipe(t, "catalog", "import", one, "--url", srv.URL, "--admin-token", "s3cret")
	if code != 0 || out != "imported 1 catalog entry from "+one+" (1 line validated)\n" {
		t.Errorf("import of one line, flags after the file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = statepipe(t, "catalog", "import", "--url", srv.URL, two, "--admin-token", "s3cret")
	if code != 0 || out != "imported 2 catalog entries from "+two+" (2 lines validated)\n" {
		t.Errorf("import of two lines: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = statepipe(t, "catalog", "import", one, "--url", srv.URL)
	if code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "the site wants a token: give --admin-token T or $STATEPIPE_ADMIN_TOKEN") {
		t.Errorf("import without the token: exit %d, stderr %q; want 1 and how to give the token", code, errOut)
	}
}

// enrollSite is a fake site's /v1/enroll: it signs a credential for whatever key asks, and
// records the keys it saw.
func enrollSite(t *testing.T, keys *[][]byte) *httptest.Server {
	_, siteKey, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req schema.EnrollRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("enrol body: %v", err)
		}
		*keys = append(*keys, req.PublicKey)
		exp := time.Now().Add(time.Hour)
		cred, err := schema.SignCredential(schema.Credential{Client: req.Client, Site: req.Site, Key: req.PublicKey, Inc: 1,
			Issued: time.Now().UnixMilli(), Expires: exp.UnixMilli()}, siteKey)
		if err != nil {
			t.Error(err)
		}
		_ = json.NewEncoder(w).Encode(schema.EnrollResponse{Credential: cred, Expires: exp, SerialBase: schema.SerialBase(1)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// writeIdentity writes an identity file of client at site with a new key and a credential
// signed by siteKey.
func writeIdentity(t *testing.T, path, clientID, site string, siteKey ed25519.PrivateKey) *client.Identity {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	cred, err := schema.SignCredential(schema.Credential{Client: clientID, Site: site, Key: pub, Inc: 1,
		Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}, siteKey)
	if err != nil {
		t.Fatal(err)
	}
	id := &client.Identity{Client: clientID, Site: site, PrivateKey: key, Credential: cred, Expires: now.Add(time.Hour), SerialBase: schema.SerialBase(1)}
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	return id
}

// client enroll --out refuses to overwrite another identity's file (its private key) unless
// --force; the same client and site enrol again with the file's key.
func TestBinaryCLIEnrollKeepsIdentities(t *testing.T) {
	t.Parallel()
	var keys [][]byte
	srv := enrollSite(t, &keys)
	_, siteKey, _ := ed25519.GenerateKey(rand.Reader)
	file := filepath.Join(t.TempDir(), "pc.identity")
	other := writeIdentity(t, file, "pc-other", "P01", siteKey)
	_, errOut, code := statepipe(t, "client", "enroll", "--url", srv.URL, "--site", "P01", "--id", "pc-1", "--out", file)
	if code != 1 || !strings.Contains(errOut, file+" holds the identity of client pc-other at site P01") || !strings.Contains(errOut, "--force") {
		t.Errorf("enrol over another identity: exit %d, stderr %q; want a refusal naming the file and --force", code, errOut)
	}
	if id, err := client.LoadIdentity(file); err != nil || id.Client != "pc-other" || !bytes.Equal(id.PrivateKey, other.PrivateKey) || len(keys) != 0 {
		t.Fatalf("after the refusal: identity %+v, err %v, %d enrolments; want the file untouched and no enrolment", id, err, len(keys))
	}
	out, errOut, code := statepipe(t, "client", "enroll", "--url", srv.URL, "--site", "P01", "--id", "pc-1", "--out", file, "--force")
	first, err := client.LoadIdentity(file)
	if code != 0 || err != nil || first.Client != "pc-1" || !strings.HasPrefix(out, "enrolled client pc-1 at site P01") {
		t.Fatalf("enrol --force: exit %d, stdout %q, stderr %q, identity %+v, err %v", code, out, errOut, first, err)
	}
	out, errOut, code = statepipe(t, "client", "enroll", "--url", srv.URL, "--site", "P01", "--id", "pc-1", "--out", file)
	again, err := client.LoadIdentity(file)
	if code != 0 || err != nil || !bytes.Equal(again.PrivateKey, first.PrivateKey) || !strings.Contains(out, "enrolled again, with the key of "+file) {
		t.Errorf("enrol again: exit %d, stdout %q, stderr %q, err %v; want the file's key kept and said so", code, out, errOut, err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[1], ed25519.PrivateKey(first.PrivateKey).Public().(ed25519.PublicKey)) {
		t.Errorf("the site saw %d enrolments; the second must be of the file's key", len(keys))
	}
}

// An identity the site did not sign (enrolled before the site was reset) is refused with the
// command that enrols it again.
func TestBinaryCLISendWithAnIdentityOfAResetSite(t *testing.T) {
	t.Parallel()
	_, before, _ := ed25519.GenerateKey(rand.Reader)
	now, _, _ := ed25519.GenerateKey(rand.Reader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As ingest checks a credential: with the site's key of now.
		if _, err := schema.ParseCredential(r.Header.Get(schema.HeaderCredential), now, time.Now()); err != nil {
			writeAPIError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, err.Error(), schema.HeaderCredential)
			return
		}
		t.Error("a credential of the site's previous key was accepted")
	}))
	defer srv.Close()
	dir := t.TempDir()
	file, rep := filepath.Join(dir, "pc.identity"), filepath.Join(dir, "report.json")
	writeIdentity(t, file, "pc-1", "P01", before)
	body := `{"v":1,"client":"pc-1","site":"P01","messages":[{"serial":1,"time":` + jsonInt(time.Now().UnixMilli()) + `,"topic_type":500,"topic_id":"KB1","state":2,"error":0}]}`
	if err := os.WriteFile(rep, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := statepipe(t, "client", "send", rep, "--url", srv.URL, "--identity", file)
	want := "statepipe client enroll --url " + srv.URL + " --site P01 --id pc-1 --out " + file
	if code != 1 || !strings.Contains(errOut, "not signed by this site") || !strings.Contains(errOut, "reset") || !strings.Contains(errOut, want) {
		t.Errorf("send with a reset site's identity: exit %d, stderr:\n%s\nwant the refusal and %q", code, errOut, want)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A server role stopped by a signal ends its log with one line for the whole stop.
func TestBinaryCLIShutdownLogsAFinalLine(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "ingest", "--kafka.brokers", strings.Join(b.Addrs(), ","), "--site", "SHUTDOWN", "--listen", "127.0.0.1:0",
		"--ingest.site-key", filepath.Join(dir, "site.key"), "--ingest.site-key-create")
	cmd.Dir, cmd.Env = dir, envWithoutChdb()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var lines []string
	serving := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), `msg="ingest serving"`) {
				close(serving)
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not start")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("ingest stopped by SIGINT: %v", err)
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, `msg="stopped statepipe" took=`) {
		t.Errorf("last log line %q; want one for the whole stop, with the time it took", last)
	}
}
