package main

import (
	"context"
	"flag"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/clickhouse"
	"github.com/statepipe/statepipe/schema"
)

// storeConfig picks the store adapter: a ClickHouse server when a DSN is given, otherwise
// the embedded engine (chDB). SQL bounds analyst SQL (POST /v1/sql) on either.
type storeConfig struct {
	ClickHouse clickhouse.Config
	ChdbLib    string
	ChdbPath   string
	SQL        schema.SQLLimits
}

func (c *storeConfig) registerFlags(fs *flag.FlagSet) {
	c.ClickHouse.RegisterFlags("clickhouse.", fs)
	fs.StringVar(&c.ChdbLib, "chdb.lib", "", "path to libchdb.so (default: $CHDB_LIB_PATH, then .deps/chdb/libchdb.so)")
	c.SQL.RegisterFlags("sql.", fs)
}

func (c *storeConfig) open(ctx context.Context) (siteStore, error) {
	if err := c.SQL.Validate(); err != nil {
		return nil, err
	}
	if err := c.ClickHouse.Validate(); err != nil { // a cluster without a DSN, too
		return nil, err
	}
	if c.ClickHouse.DSN != "" {
		cfg := c.ClickHouse
		cfg.SQL = c.SQL
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		return clickhouse.New(ctx, cfg)
	}
	return chdb.New(chdb.Config{LibPath: c.ChdbLib, Path: c.ChdbPath, SQL: c.SQL})
}
