package chdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// The read-only guard of `statepipe sql` must hold against writes, files and settings tricks
// (each of these got through an earlier, text-matching guard).
func TestQueryReadOnlyRefusesWritesAndFiles(t *testing.T) {
	if skipReason != "" {
		t.Skip(skipReason)
	}
	st, err := New(Config{Path: testDataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "pwned")
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT 'x' INTO  OUTFILE '" + out + "'",
		"SELECT 'x' INTO\tOUTFILE '" + out + "' FORMAT CSV",
		"SELECT * FROM file('" + secret + "', 'LineAsString') SETTINGS max_threads = 1",
		"SELECT * FROM file('" + secret + "', 'LineAsString')",
		"SELECT 1 SETTINGS readonly = 0",
		"SELECT * FROM file('" + secret + "', 'LineAsString') SETTINGS readonly = 0",
		"SELECT * FROM (SELECT * FROM file('" + secret + "', 'LineAsString') SETTINGS ReadOnly = 0)",
		"WITH x AS (SELECT 1) SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
		"DESCRIBE file('" + secret + "', 'LineAsString')",
		"CREATE TABLE default.t (a UInt8) ENGINE = Memory",
		"SELECT 1; DROP DATABASE default",
		"INSERT INTO FUNCTION file('" + out + "', 'CSV') SELECT 1",
	} {
		if _, err := st.QueryReadOnly(ctx, q); err == nil {
			t.Errorf("read-only SQL ran: %s", q)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("read-only SQL wrote %s", out)
	}
	for _, q := range []string{"SELECT 1 AS one", "WITH 2 AS two SELECT two", "SHOW DATABASES", "SELECT count() FROM system.one"} {
		if _, err := st.QueryReadOnly(ctx, q); err != nil {
			t.Errorf("read query refused: %s: %v", q, err)
		}
	}
}
