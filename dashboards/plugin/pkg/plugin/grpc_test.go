package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/experimental/datasourcetest"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/statepipe/statepipe/dashboards/plugin/pkg/plugin"
)

// collectSender gathers a resource's answer.
type collectSender struct{ resp *backend.CallResourceResponse }

func (s *collectSender) Send(r *backend.CallResourceResponse) error { s.resp = r; return nil }

// TestGRPCInProcess serves the datasource over the SDK's gRPC server in process
// (datasourcetest) and checks every golden case, "Save & test" and the resources through it.
func TestGRPCInProcess(t *testing.T) {
	f := fixtureSite(t)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	tp, err := datasourcetest.Manage(plugin.NewDatasource, datasourcetest.ManageOpts{Address: fmt.Sprintf("127.0.0.1:%d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tp.Shutdown(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := tp.Client.QueryData(ctx, c.request(f.URL))
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, c.name, resp, false)
		})
	}
	health, err := tp.Client.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: pluginContext(f.URL)})
	if err != nil {
		t.Fatal(err)
	}
	if health.Status != backend.HealthStatusOk || !strings.Contains(health.Message, "OK: statepipe site P01") {
		t.Errorf("health over gRPC: %v %q", health.Status, health.Message)
	}
	want := map[string]string{
		"sites":       `[{"value":"P01","text":"P01 (below CEN)"}]`, // P01 and the sites below it
		"lists":       `[{"value":"L-2026-11","text":"Patch Tuesday November 2026 (L-2026-11)"}]`,
		"collections": `[{"value":"C-ALL","text":"All workstations (C-ALL)"},{"value":"C-PILOT","text":"Pilot ring (C-PILOT)"}]`,
		"deployments": `[{"value":"D-2026-11","text":"November 2026 (D-2026-11)"}]`,
	}
	for name, body := range want {
		s := &collectSender{}
		err := tp.Client.CallResource(ctx, &backend.CallResourceRequest{PluginContext: pluginContext(f.URL), Path: name, Method: "GET",
			URL: "/api/datasources/uid/statepipe/resources/" + name}, s)
		if err != nil {
			t.Fatalf("resource %s: %v", name, err)
		}
		if s.resp == nil || s.resp.Status != 200 || string(s.resp.Body) != body {
			t.Errorf("resource %s: got %+v, want 200 %s", name, s.resp, body)
		}
	}
	s := &collectSender{}
	if err := tp.Client.CallResource(ctx, &backend.CallResourceRequest{PluginContext: pluginContext(f.URL), Path: "machines", Method: "GET"}, s); err != nil {
		t.Fatal(err)
	}
	if s.resp == nil || s.resp.Status != 404 || !strings.Contains(string(s.resp.Body), "want sites, lists, collections or deployments") {
		t.Errorf("unknown resource: %+v", s.resp)
	}
}

// The built binary, started as Grafana starts it and driven over its plugin protocol.

var (
	binOnce sync.Once
	binPath string
	binErr  error

	procOnce sync.Once
	proc     *binaryPlugin
	procErr  error
)

// pluginBinary is $STATEPIPE_PLUGIN_BINARY (absolute, or relative to dashboards/plugin: e.g.
// dist/gpx_statepipe_linux_amd64 from `mage build:linux`), or else ./pkg built as mage's build:linux builds it (static, no cgo).
func pluginBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("STATEPIPE_PLUGIN_BINARY"); p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(pluginDir, p) // relative to dashboards/plugin
			}
			binPath = p
			_, binErr = os.Stat(binPath)
			return
		}
		dir, err := os.MkdirTemp("", "statepipe-plugin-bin-")
		if err != nil {
			binErr = err
			return
		}
		atExit(func() { os.RemoveAll(dir) })
		binPath = filepath.Join(dir, "gpx_statepipe_linux_amd64")
		// the flags of the SDK's build:linux (mage -v build:linux prints them)
		build := exec.Command("go", "build", "-o", binPath, "-tags", "arrow_json_stdlib", "-ldflags", "-w -s -extldflags \"-static\"", "./pkg")
		build.Dir = pluginDir
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("cannot build the plugin binary: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type binaryPlugin struct {
	client *goplugin.Client
	data   grpcplugin.DataClient
	diag   grpcplugin.DiagnosticsClient
	res    grpcplugin.ResourceClient
}

// startBinary starts the built plugin once, with Grafana's handshake, and dispenses its
// data and diagnostics services.
func startBinary(t testing.TB) *binaryPlugin {
	t.Helper()
	bin := pluginBinary(t)
	procOnce.Do(func() {
		c := goplugin.NewClient(&goplugin.ClientConfig{
			HandshakeConfig: goplugin.HandshakeConfig{
				ProtocolVersion:  grpcplugin.ProtocolVersion,
				MagicCookieKey:   grpcplugin.MagicCookieKey,
				MagicCookieValue: grpcplugin.MagicCookieValue,
			},
			VersionedPlugins: map[int]goplugin.PluginSet{
				grpcplugin.ProtocolVersion: {
					"data":        &grpcplugin.DataGRPCPlugin{},
					"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{},
					"resource":    &grpcplugin.ResourceGRPCPlugin{},
				},
			},
			Cmd:              exec.Command(bin),
			AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
			Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: io.Discard, Level: hclog.Error}),
			StartTimeout:     30 * time.Second,
		})
		atExit(c.Kill)
		rpc, err := c.Client()
		if err != nil {
			procErr = fmt.Errorf("cannot start the plugin binary over go-plugin: %w", err)
			return
		}
		if v := c.NegotiatedVersion(); v != grpcplugin.ProtocolVersion {
			procErr = fmt.Errorf("negotiated protocol version %d, want %d", v, grpcplugin.ProtocolVersion)
			return
		}
		p := &binaryPlugin{client: c}
		raw, err := rpc.Dispense("data")
		if err != nil {
			procErr = fmt.Errorf("cannot dispense data: %w", err)
			return
		}
		var ok bool
		if p.data, ok = raw.(grpcplugin.DataClient); !ok {
			procErr = fmt.Errorf("data is a %T, not a grpcplugin.DataClient", raw)
			return
		}
		if raw, err = rpc.Dispense("diagnostics"); err != nil {
			procErr = fmt.Errorf("cannot dispense diagnostics: %w", err)
			return
		}
		if p.diag, ok = raw.(grpcplugin.DiagnosticsClient); !ok {
			procErr = fmt.Errorf("diagnostics is a %T, not a grpcplugin.DiagnosticsClient", raw)
			return
		}
		if raw, err = rpc.Dispense("resource"); err != nil {
			procErr = fmt.Errorf("cannot dispense resource: %w", err)
			return
		}
		if p.res, ok = raw.(grpcplugin.ResourceClient); !ok {
			procErr = fmt.Errorf("resource is a %T, not a grpcplugin.ResourceClient", raw)
			return
		}
		proc = p
	})
	if procErr != nil {
		t.Fatal(procErr)
	}
	return proc
}

func (p *binaryPlugin) query(t testing.TB, req *backend.QueryDataRequest) *backend.QueryDataResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pr, err := p.data.QueryData(ctx, backend.ToProto().QueryDataRequest(req))
	if err != nil {
		t.Fatalf("QueryData over the plugin protocol: %v", err)
	}
	resp, err := backend.FromProto().QueryDataResponse(pr)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (p *binaryPlugin) health(t testing.TB, pctx backend.PluginContext) *backend.CheckHealthResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pr, err := p.diag.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: backend.ToProto().PluginContext(pctx)})
	if err != nil {
		t.Fatalf("CheckHealth over the plugin protocol: %v", err)
	}
	return backend.FromProto().CheckHealthResponse(pr)
}

// resource asks GET resources/NAME; it returns the status and body.
func (p *binaryPlugin) resource(t testing.TB, pctx backend.PluginContext, name string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := p.res.CallResource(ctx, backend.ToProto().CallResourceRequest(&backend.CallResourceRequest{
		PluginContext: pctx, Path: name, Method: "GET", URL: "/api/datasources/uid/statepipe/resources/" + name}))
	if err != nil {
		t.Fatalf("CallResource %s over the plugin protocol: %v", name, err)
	}
	var code int
	var body []byte
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("CallResource %s: %v", name, err)
		}
		if r.Code != 0 {
			code = int(r.Code)
		}
		body = append(body, r.Body...)
	}
	return code, body
}

// TestBinaryOverPluginProtocol drives the built binary as Grafana does: every golden case
// through QueryData, and CheckHealth with the right and a wrong token.
func TestBinaryOverPluginProtocol(t *testing.T) {
	f := fixtureSite(t)
	p := startBinary(t)
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) { checkGolden(t, c.name, p.query(t, c.request(f.URL)), false) })
	}
	h := p.health(t, pluginContext(f.URL))
	if h.Status != backend.HealthStatusOk || !strings.Contains(h.Message, "OK: statepipe site P01") {
		t.Errorf("health: %v %q", h.Status, h.Message)
	}
	bad := pluginContext(f.URL)
	bad.DataSourceInstanceSettings.UID = "statepipe-wrong-token"
	bad.DataSourceInstanceSettings.DecryptedSecureJSONData = map[string]string{"token": "not-the-token"}
	h = p.health(t, bad)
	if h.Status != backend.HealthStatusError || !strings.HasPrefix(h.Message, "Wrong token:") {
		t.Errorf("health with a wrong token: %v %q", h.Status, h.Message)
	}
	// a query with the wrong token carries statepipe's 401 as the query's error
	req := goldenCases[0].request(f.URL)
	req.PluginContext = bad
	dr := p.query(t, req).Responses["A"]
	if dr.Error == nil || dr.Status != backend.StatusUnauthorized || dr.ErrorSource != backend.ErrorSourceDownstream ||
		!strings.Contains(dr.Error.Error(), "401 unauthenticated") {
		b, _ := json.Marshal(dr)
		t.Errorf("query with a wrong token: %s", b)
	}
}
