//go:build mage

// Magefile builds the datasource's backend with the SDK's build targets:
// `go run github.com/magefile/mage@v1.17.2 -v build:linux` writes
// dist/gpx_statepipe_linux_amd64 (the executable name comes from src/plugin.json).
package main

import (
	// mage:import
	build "github.com/grafana/grafana-plugin-sdk-go/build"
)

// Default builds the backend for every platform Grafana runs on.
var Default = build.BuildAll
