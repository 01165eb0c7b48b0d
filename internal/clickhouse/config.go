package clickhouse

import (
	"errors"
	"flag"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/statepipe/statepipe/schema"
)

// Config selects the ClickHouse server.
type Config struct {
	// DSN is a clickhouse-go DSN, parsed by clickhouse.ParseDSN:
	// clickhouse://user:password@host:9000/database?dial_timeout=10s&compress=lz4.
	// Several hosts may be listed (host1:9000,host2:9000) for fail-over. Connection-pool and
	// transport knobs are DSN parameters (max_open_conns, max_idle_conns, conn_max_lifetime,
	// dial_timeout, read_timeout, compress, secure, skip_verify) and keep clickhouse-go's
	// defaults when absent; see the driver's README. Empty means no server: the binary uses
	// the embedded engine instead.
	DSN string
	// SQL bounds analyst SQL (QueryReadOnly); the zero value is schema.DefaultSQLLimits. Its
	// flags are registered beside the store's (cmd/statepipe), not here: both adapters take
	// them.
	SQL schema.SQLLimits
}

// RegisterFlags registers the config's flags with the given prefix (e.g. "clickhouse.").
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.DSN, prefix+"dsn", "",
		"ClickHouse server DSN for the native protocol, e.g. clickhouse://user:pass@host:9000/default?dial_timeout=10s&compress=lz4; empty uses the embedded engine (chDB)")
}

// Validate checks that the DSN, when set, parses. An empty DSN is valid: it means the server
// adapter is not selected (New refuses it).
func (c *Config) Validate() error {
	if err := c.SQL.Validate(); err != nil {
		return err
	}
	if c.DSN == "" {
		return nil
	}
	if _, err := ch.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("cannot parse clickhouse dsn: %w", err)
	}
	return nil
}

// errNoDSN is returned by New for an empty Config.DSN.
var errNoDSN = errors.New("cannot open clickhouse: no dsn given (set --clickhouse.dsn)")
