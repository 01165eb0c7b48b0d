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
	// Cluster is the ClickHouse cluster (a name in the servers' remote_servers, with Keeper
	// and the {shard} and {replica} macros configured) the site's database lives on; empty
	// for a single server. When set, the migrations run as cluster DDL (schema.OnCluster:
	// ON CLUSTER, Replicated* engines, the tables keyed by client sharded by it behind
	// Distributed tables of their own names), and the connections carry the settings that
	// layout needs (clusterSettings). A plain identifier.
	Cluster string
	// SQL bounds analyst SQL (QueryReadOnly); the zero value is schema.DefaultSQLLimits. Its
	// flags are registered beside the store's (cmd/statepipe), not here: both adapters take
	// them.
	SQL schema.SQLLimits
}

// RegisterFlags registers the config's flags with the given prefix (e.g. "clickhouse.").
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	fs.StringVar(&c.DSN, prefix+"dsn", "",
		"ClickHouse server DSN for the native protocol, e.g. clickhouse://user:pass@host:9000/default?dial_timeout=10s&compress=lz4; empty uses the embedded engine (chDB)")
	fs.StringVar(&c.Cluster, prefix+"cluster", "",
		"ClickHouse cluster (remote_servers name; needs Keeper and the {shard} and {replica} macros) to create the site's database on: "+
			"ON CLUSTER DDL, Replicated tables, the client-keyed tables sharded by cityHash64(client) behind Distributed tables; "+
			"empty (default): a single server. Set it when the database is first created: it does not convert one")
}

// Validate checks that the DSN, when set, parses, and that the cluster, when set, is a plain
// identifier and comes with a DSN. An empty DSN is valid: it means the server adapter is not
// selected (New refuses it).
func (c *Config) Validate() error {
	if err := c.SQL.Validate(); err != nil {
		return err
	}
	if c.Cluster != "" && !schema.ValidClusterName(c.Cluster) {
		return fmt.Errorf("cannot use --clickhouse.cluster %q: not a plain ClickHouse identifier (letters, digits and _, not starting with a digit)", c.Cluster)
	}
	if c.DSN == "" {
		if c.Cluster != "" {
			return fmt.Errorf("cannot use --clickhouse.cluster %s without --clickhouse.dsn: the embedded engine is a single node", c.Cluster)
		}
		return nil
	}
	if _, err := ch.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("cannot parse clickhouse dsn: %w", err)
	}
	return nil
}

// errNoDSN is returned by New for an empty Config.DSN.
var errNoDSN = errors.New("cannot open clickhouse: no dsn given (set --clickhouse.dsn)")

// clusterSettings adds to settings, sent with every query, what the cluster layout of
// schema.OnCluster needs (nothing without a cluster):
//
//   - insert_distributed_sync = 1 (distributed_foreground_insert since ClickHouse 23.x; the
//     old name is its alias): an insert into a Distributed table returns once every shard has
//     the rows, not once they are queued on the node. The projector commits Kafka offsets and
//     writes a batch's offsets row only after its base tables acknowledged, so it is pinned.
//   - distributed_product_mode = 'local': a query over a Distributed table that joins (or
//     IN-filters) another one runs it against each shard's own _local table. The views and
//     reports join the sharded tables on client, their sharding key, so that is exact (the
//     default, deny, refuses such queries; global would ship a whole table to every shard).
//   - load_balancing = 'in_order': the shards' replicas are tried in the order of
//     remote_servers, so inserts and the reads after them go to the same replica while it is
//     up (replicas catch up asynchronously; random balancing could read one that has not).
//
// The last two are defaults: a DSN parameter of the same name wins.
func clusterSettings(settings map[string]any, cluster string) {
	if cluster == "" {
		return
	}
	settings["insert_distributed_sync"] = 1
	for k, v := range map[string]any{"distributed_product_mode": "local", "load_balancing": "in_order"} {
		if _, ok := settings[k]; !ok {
			settings[k] = v
		}
	}
}
