package clickhouse

import (
	"context"
	"flag"
	"fmt"
	"maps"
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
// optional CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (`make test-clickhouse` runs it against
// the compose file's server). It creates and drops the database storetest_clickhouse.
//
// With CLICKHOUSE_CLUSTER set too (`make test-clickhouse-cluster`), the store is on that
// cluster (Config.Cluster): the suite's migrations run as cluster DDL, and its inserts and
// reads go through the Distributed tables. A replicated table's Keeper path names its
// database and outlives a DROP for a while, so each run then takes a database of its own,
// storetest_cluster_<unix seconds>, dropped on every node at the end.
func TestStoreContract(t *testing.T) {
	addr := os.Getenv("CLICKHOUSE_ADDR")
	if addr == "" {
		t.Skip("CLICKHOUSE_ADDR not set: clickhouse-go adapter contract tests skipped")
	}
	dsn := url.URL{Scheme: "clickhouse", Host: addr, Path: "/default"}
	if user := os.Getenv("CLICKHOUSE_USER"); user != "" {
		dsn.User = url.UserPassword(user, os.Getenv("CLICKHOUSE_PASSWORD"))
	}
	cfg := Config{DSN: dsn.String(), Cluster: os.Getenv("CLICKHOUSE_CLUSTER")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	db := "storetest_clickhouse"
	if cfg.Cluster != "" {
		db = fmt.Sprintf("storetest_cluster_%d", time.Now().Unix())
		t.Cleanup(func() { dropOnCluster(t, cfg, db) })
	}
	storetest.Run(t, func(t *testing.T, sql schema.SQLLimits) schema.Store {
		cfg := cfg
		cfg.SQL = sql
		st, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}, db)
}

// dropOnCluster drops database db on every node of cfg.Cluster.
func dropOnCluster(t *testing.T, cfg Config, db string) {
	ctx := context.Background()
	st, err := New(ctx, cfg)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	}()
	sts, err := schema.OnCluster("DROP DATABASE IF EXISTS "+db, cfg.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range sts {
		if err := st.Exec(ctx, q); err != nil {
			t.Errorf("cannot drop %s: %v", db, err)
		}
	}
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

// --clickhouse.cluster: a plain identifier, only with a DSN; it adds the settings the
// cluster layout needs, a DSN's own values of the defaults winning.
func TestClusterConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags("clickhouse.", fs)
	if err := fs.Parse([]string{"--clickhouse.dsn", "clickhouse://localhost:9000/default", "--clickhouse.cluster", "main_2"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != "main_2" {
		t.Fatalf("Cluster = %q", cfg.Cluster)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, bad := range []string{"my-cluster", "2shards", "c ON CLUSTER x", "`c`"} {
		cfg := Config{DSN: "clickhouse://localhost:9000/default", Cluster: bad}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--clickhouse.cluster") {
			t.Errorf("Validate of cluster %q: %v, want an error naming --clickhouse.cluster", bad, err)
		}
	}
	if err := (&Config{Cluster: "main"}).Validate(); err == nil || !strings.Contains(err.Error(), "without --clickhouse.dsn") {
		t.Errorf("Validate of a cluster without a DSN: %v, want an error naming --clickhouse.dsn", err)
	}

	none := map[string]any{}
	clusterSettings(none, "")
	if len(none) != 0 {
		t.Errorf("settings without a cluster: %v, want none", none)
	}
	got := map[string]any{"load_balancing": "nearest_hostname", "insert_distributed_sync": 0}
	clusterSettings(got, "main")
	want := map[string]any{"insert_distributed_sync": 1, "distributed_product_mode": "local", "load_balancing": "nearest_hostname"}
	if !maps.Equal(got, want) {
		t.Errorf("settings on a cluster: %v, want %v", got, want)
	}
	if c := (&Store{cluster: "main"}).Cluster(); c != "main" {
		t.Errorf("Store.Cluster() = %q", c)
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
