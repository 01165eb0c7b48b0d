package main

// System tests of the real binary: built with `go build`, started as a process.

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "statepipe-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "statepipe")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("cannot build statepipe: %v", buildErr)
	}
	return binPath
}

// envWithoutChdb is the environment of a machine that has no libchdb.so.
func envWithoutChdb() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "CHDB_LIB_PATH=") {
			env = append(env, e)
		}
	}
	return env
}

// Server mode must start on a machine without libchdb.so: the ingest role needs only Kafka.
func TestBinaryIngestRoleRunsWithoutChdb(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	brokers := realKafka()
	if brokers == nil {
		b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		brokers = b.Addrs()
	}
	site := "B" + strings.ToUpper(strings.ReplaceAll(t.Name()[len(t.Name())-6:], "_", "X"))
	dir := t.TempDir() // no .deps/ here
	// The server role requires signed reports: without a site key it refuses to start.
	noKey := exec.Command(bin, "ingest", "--kafka.brokers", strings.Join(brokers, ","), "--site", site, "--listen", "127.0.0.1:0")
	noKey.Dir, noKey.Env = dir, envWithoutChdb()
	if out, err := noKey.CombinedOutput(); err == nil || !strings.Contains(string(out), "site-key") {
		t.Fatalf("ingest without a site key: err %v, output %s; want a refusal naming --ingest.site-key", err, out)
	}
	// Nor with a path to a key that does not exist, unless told to make the site's key.
	missing := exec.Command(bin, "ingest", "--kafka.brokers", strings.Join(brokers, ","), "--site", site, "--listen", "127.0.0.1:0",
		"--ingest.site-key", filepath.Join(dir, "typo.key"))
	missing.Dir, missing.Env = dir, envWithoutChdb()
	if out, err := missing.CombinedOutput(); err == nil || !strings.Contains(string(out), "site-key-create") {
		t.Fatalf("ingest with a site key that does not exist: err %v, output %s; want a refusal naming --ingest.site-key-create", err, out)
	}
	cmd := exec.Command(bin, "ingest", "--kafka.brokers", strings.Join(brokers, ","), "--site", site, "--listen", "127.0.0.1:0",
		"--ingest.site-key", filepath.Join(dir, "site.key"), "--ingest.site-key-create")
	cmd.Dir = dir
	cmd.Env = envWithoutChdb()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	urlRe := regexp.MustCompile(`url=(http://[0-9.:]+)/v1/reports`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var base string
	select {
	case base = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not start")
	}
	body, _ := jsonReport(site)
	if resp, err := httpPost(base+"/v1/reports", schema.MediaJSON, body); err != nil || resp != 401 {
		t.Fatalf("unsigned post: status %d, err %v; want 401", resp, err)
	}
	c, err := client.Enroll(context.Background(), client.Config{URL: base, Site: site, ClientID: "bin-client"})
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	if err := c.Report(context.Background(), false, schema.StateMessage{TopicType: 500, TopicID: "KB1", State: 2}); err != nil {
		t.Fatalf("signed report: %v", err)
	}
	// The record is in Kafka, keyed by client, in the partition murmur2 gives its key.
	kc := kafka.DefaultConfig()
	kc.Brokers = brokers
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	parts, err := kafka.Partitions(ctx, kc, kafka.StateTopic(site))
	if err != nil {
		t.Fatal(err)
	}
	var recs []kafka.Record
	if err := kafka.ReadAll(ctx, kc, kafka.StateTopic(site), func(r kafka.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatalf("cannot read the state topic: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records in the state topic, want the one report", len(recs))
	}
	m := recs[0]
	if want := kafka.PartitionOf([]byte("bin-client"), len(parts)); m.Partition != want {
		t.Errorf("record in partition %d, want %d (murmur2 of its key)", m.Partition, want)
	}
	var rep schema.Report
	if err := schema.DecodeReport(m.Value, &rep); err != nil || string(m.Key) != "bin-client" || rep.Messages[0].TopicID != "KB1" {
		t.Errorf("record key %q report %+v err %v", m.Key, rep, err)
	}
}

// Embedded mode without the library fails at once and says how to install it.
func TestBinaryRunWithoutChdbSaysHowToInstall(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	cmd := exec.Command(bin, "run", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--kafka.listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Env = envWithoutChdb()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(out.String(), "make deps") || !strings.Contains(out.String(), "@chdb/lib-linux-x64-gnu") {
			t.Errorf("exit %v, output %q: want a failure saying how to install libchdb", err, out.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("run without libchdb did not exit")
	}
}

func jsonReport(site string) ([]byte, error) {
	return []byte(`{"v":1,"client":"bin-client","site":"` + site + `","messages":[{"serial":1,"time":1,"topic_type":500,"topic_id":"KB1","state":2,"error":0}]}`), nil
}

func httpPost(url, ctype string, body []byte) (int, error) {
	resp, err := httpClient.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, nil
}
