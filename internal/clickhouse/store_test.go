package clickhouse

import (
	"context"
	"flag"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/storetest"
	"github.com/statepipe/statepipe/schema"
)

// TestStoreContract runs the storage contract suite against a ClickHouse server when
// CLICKHOUSE_ADDR (host:port of the native protocol, e.g. localhost:9000) is set, with
// optional CLICKHOUSE_USER and CLICKHOUSE_PASSWORD. It creates and drops the database
// storetest_clickhouse.
func TestStoreContract(t *testing.T) {
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		t.Skip("CLICKHOUSE_ADDR not set: clickhouse-go adapter contract tests skipped")
	}
	dsn := url.URL{Scheme: "clickhouse", Host: addr, Path: "/default"}
	if user := os.Getenv("CLICKHOUSE_USER"); user != "" {
		dsn.User = url.UserPassword(user, os.Getenv("CLICKHOUSE_PASSWORD"))
	}
	cfg := Config{DSN: dsn.String()}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T, sql schema.SQLLimits) schema.Store {
		cfg := cfg
		cfg.SQL = sql
		st, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, "storetest_clickhouse")
}

func TestNewWithoutServer(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("New with an empty DSN: got no error")
	}
	cfg := Config{DSN: "clickhouse://u:secret@127.0.0.1:1/db?dial_timeout=200ms"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	_, err := New(context.Background(), cfg)
	if err == nil {
		t.Fatal("New against a closed port: got no error")
	}
	if got := err.Error(); !strings.Contains(got, "cannot ping clickhouse (127.0.0.1:1/db)") || strings.Contains(got, "secret") {
		t.Fatalf("New against a closed port: error %q should name the address and not the password", got)
	}
}

func TestConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("clickhouse.", fs)
	if err := fs.Parse([]string{"--clickhouse.dsn", "clickhouse://default:@localhost:9000/default?compress=lz4"}); err != nil {
		t.Fatal(err)
	}
	if cfg.DSN != "clickhouse://default:@localhost:9000/default?compress=lz4" {
		t.Fatalf("DSN = %q", cfg.DSN)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := (&Config{}).Validate(); err != nil {
		t.Fatalf("Validate of an empty DSN (server adapter not selected): %v", err)
	}
	bad := Config{DSN: "clickhouse://u:secret@host:9000/db?dial_timeout=soon"}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate of a bad DSN: got no error")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("Validate error %q shows the password", err)
	}
}

// Analyst SQL limits are validated with the store's config, naming the flag.
func TestSQLLimitsAreValidated(t *testing.T) {
	cfg := Config{DSN: "clickhouse://127.0.0.1:1/db?dial_timeout=200ms", SQL: schema.SQLLimits{MaxConcurrent: 0, Timeout: time.Second}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--sql.max-concurrent") {
		t.Errorf("Validate: %v, want an error naming --sql.max-concurrent", err)
	}
	if _, err := New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "--sql.max-concurrent") {
		t.Errorf("New: %v, want an error naming --sql.max-concurrent", err)
	}
	// Whole numbers travel as integers (servers before string settings take nothing else).
	for in, want := range map[any]any{int64(5): 5, 30.0: 30, 1.5: 1.5, "x": "x"} {
		if got := settingValue(in); got != want {
			t.Errorf("settingValue(%v) = %#v, want %#v", in, got, want)
		}
	}
}
