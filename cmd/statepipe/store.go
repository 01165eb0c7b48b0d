package main

import (
	"context"
	"flag"

	"github.com/statepipe/statepipe/internal/chdb"
)

type storeConfig struct {
	ChdbLib  string
	ChdbPath string
}

func (c *storeConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ChdbLib, "chdb.lib", "", "path to libchdb.so")
}

func (c *storeConfig) open(ctx context.Context) (siteStore, error) {
	return chdb.New(chdb.Config{LibPath: c.ChdbLib, Path: c.ChdbPath})
}
