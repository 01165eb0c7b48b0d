// Command gpx_statepipe is the backend of the statepipe Grafana datasource: Grafana starts it
// and talks to it over its plugin protocol (gRPC, hashicorp/go-plugin).
package main

import (
	"os"

	"github.com/grafana/grafana-plugin-sdk-go/backend/datasource"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

func main() {
	if err := datasource.Manage(plugin.ID, plugin.NewDatasource, datasource.ManageOpts{}); err != nil {
		log.DefaultLogger.Error("cannot serve the statepipe datasource", "error", err.Error())
		os.Exit(1)
	}
}
