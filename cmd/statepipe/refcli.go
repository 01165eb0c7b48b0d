package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/schema"
)

// refCommand returns the command that imports one kind of reference data:
// `statepipe catalog import`, `statepipe lists|collections|deployments apply`.
func refCommand(kind schema.RefKind, verb string) func(context.Context, []string) error {
	summary, _ := refText(kind)
	return subcommands(string(kind), []command{{name: verb, summary: summary, run: refImport(kind, verb)}}, nil)
}

// deploymentsCommand is `statepipe deployments apply FILE.jsonl` and `statepipe deployments
// phases --deployment ID` (phases.go).
func deploymentsCommand() func(context.Context, []string) error {
	summary, _ := refText(schema.RefDeployments)
	return subcommands(string(schema.RefDeployments), []command{
		{name: "apply", summary: summary, run: refImport(schema.RefDeployments, "apply")},
		{name: "phases", summary: "show a phased deployment's phases: members, success, criterion, soak, and whether each is released or why it waits", run: cmdDeploymentPhases},
	}, nil)
}

// refText says what importing kind does and names its records, one and several.
func refText(kind schema.RefKind) (summary string, noun [2]string) {
	switch kind {
	case schema.RefCatalog:
		return "import update catalog entries (JSON lines), each created or replaced", [2]string{"catalog entry", "catalog entries"}
	case schema.RefUpdateLists:
		return "create or replace update lists (JSON lines)", [2]string{"update list", "update lists"}
	case schema.RefCollections:
		return "create or replace collections and their members (JSON lines)", [2]string{"collection", "collections"}
	case schema.RefDeployments:
		return "create or replace deployments (JSON lines)", [2]string{"deployment", "deployments"}
	}
	return "import " + string(kind), [2]string{string(kind) + " record", string(kind) + " records"}
}

// refImport is `statepipe KIND VERB [flags] FILE.jsonl`: every line is validated here first,
// then the whole file is posted to the site's /v1/ref/KIND.
func refImport(kind schema.RefKind, verb string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		fs := newFlags(string(kind)+" "+verb, "[--url URL] [--site CODE] [--admin-token T] [--no-wait] FILE.jsonl")
		base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
		site := fs.String("site", "", "the site to import at, where one process serves several (statepipe run --topology; default: its root)")
		noWait := fs.Bool("no-wait", false, "answer once Kafka acknowledged the import, without waiting for the site to fold it (reports may not show it for a few seconds)")
		tokens := addTokenFlags(fs.FlagSet, false)
		pos, err := fs.parse(args, "FILE.jsonl")
		if err != nil {
			return err
		}
		file := pos[0]
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		// Validate here first: every bad line is reported without touching the site.
		recs, lineErrs := schema.ParseRefLines(kind, bytes.NewReader(raw))
		if len(lineErrs) > 0 {
			for _, e := range lineErrs {
				fmt.Fprintf(os.Stderr, "%s:%s\n", file, e.Error())
			}
			return fmt.Errorf("%s in %s; nothing imported", count(len(lineErrs), [2]string{"bad line", "bad lines"}), file)
		}
		q := url.Values{}
		if *noWait {
			q.Set("wait", "false")
		}
		if *site != "" {
			q.Set("site", *site)
		}
		u := strings.TrimRight(*base, "/") + "/v1/ref/" + string(kind)
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/x-ndjson")
		tokens.set(req)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
			var eb ingest.RefErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&eb)
			for _, e := range eb.Lines {
				fmt.Fprintf(os.Stderr, "%s:%s\n", file, e.Error())
			}
			return fmt.Errorf("import refused: %d %s: %s%s", resp.StatusCode, eb.Error.Code, eb.Error.Message, tokenHint(req, resp.StatusCode))
		}
		var ack ingest.RefAck
		_, noun := refText(kind)
		if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
			return err
		}
		fmt.Printf("imported %s from %s (%s validated)\n", count(ack.Imported, noun), file, count(len(recs), [2]string{"line", "lines"}))
		if ack.Message != "" {
			fmt.Fprintln(os.Stderr, "note:", ack.Message)
		}
		return nil
	}
}

// count writes n with the singular or plural noun: "1 line", "2 lines".
func count(n int, noun [2]string) string {
	if n == 1 {
		return "1 " + noun[0]
	}
	return fmt.Sprintf("%d %s", n, noun[1])
}
