package chdb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/schema"
)

var sink int

type faulty struct{ n int }

// After chDB is loaded and connected — the primary connection and the further ones analyst
// SQL opens — and has inserted and queried, a nil dereference in Go code is a panic that
// recover() catches, as net/http does per request. chDB used to reset the fault signals to
// their default action, so one nil dereference in any handler killed the site ("signal:
// segmentation fault", no Go trace). The check runs in a child process: if the handlers are
// lost again, this test fails with the child's death instead of taking the test binary down.
func TestNilDereferenceIsRecoveredAfterChdb(t *testing.T) {
	requireLibrary(t)
	if os.Getenv("STATEPIPE_SIGNALS_CHILD") == "1" {
		childNilDereference(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNilDereferenceIsRecoveredAfterChdb$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "STATEPIPE_SIGNALS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "recovered: runtime error: invalid memory address or nil pointer dereference") {
		t.Fatalf("child process: %v\n%s", err, tail(string(out), 2000))
	}
}

func childNilDereference(t *testing.T) {
	st, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, st, "signals_test"); err != nil {
		t.Fatal(err)
	}
	if err := st.Exec(ctx, "INSERT INTO signals_test.clients (client) VALUES ('c1')"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Query(ctx, "SELECT count() FROM signals_test.clients"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.QueryReadOnly(ctx, "signals_test", "SELECT count() FROM signals_test.clients"); err != nil { // opens further connections
		t.Fatal(err)
	}
	var p *faulty
	func() {
		defer func() { fmt.Println("recovered:", recover()) }()
		sink = p.n
	}()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
