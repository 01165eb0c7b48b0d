package main

import (
	"context"
	"flag"

	"github.com/statepipe/statepipe/internal/chdb"
	"github.com/statepipe/statepipe/internal/clickhouse"
)

// storeConfig picks the store adapter: a ClickHouse server when a DSN is given, otherwise
// the embedded engine (chDB).
type storeConfig struct {
	ClickHouse clickhouse.Config
	ChdbLib    string
	ChdbPath   string
}

func (c *storeConfig) registerFlags(fs *flag.FlagSet) {
	c.ClickHouse.RegisterFlags("clickhouse.", fs)
	fs.StringVar(&c.ChdbLib, "chdb.lib", "", "path to libchdb.so (default: $CHDB_LIB_PATH, then .deps/chdb/libchdb.so)")
}

func (c *storeConfig) open(ctx context.Context) (siteStore, error) {
	if c.ClickHouse.DSN != "" {
		if err := c.ClickHouse.Validate(); err != nil {
			return nil, err
		}
		return clickhouse.New(ctx, c.ClickHouse)
	}
	return chdb.New(chdb.Config{LibPath: c.ChdbLib, Path: c.ChdbPath})
}
