package main

import (
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/projector"
)

// The tests' shorthands for the components' defaults.

func ingestDefaults() ingest.Config { return ingest.DefaultConfig() }

func authDefaults(mode string) ingest.AuthConfig { return ingest.DefaultAuthConfig(mode) }

func projectorDefaults() projector.Config { return projector.DefaultConfig() }
