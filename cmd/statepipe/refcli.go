package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/schema"
)

// refCommand returns the command that imports one kind of reference data:
// `statepipe catalog import`, `statepipe lists|collections|deployments apply`.
func refCommand(kind schema.RefKind, verb string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		usage := fmt.Sprintf("usage: statepipe %s %s --url URL FILE.jsonl", kind, verb)
		if len(args) == 0 || args[0] != verb {
			return errors.New(usage)
		}
		fs := flag.NewFlagSet(string(kind)+" "+verb, flag.ContinueOnError)
		base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
		tokens := addTokenFlags(fs, false)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New(usage)
		}
		raw, err := os.ReadFile(fs.Arg(0))
		if err != nil {
			return err
		}
		// Validate here first: every bad line is reported without touching the site.
		recs, lineErrs := schema.ParseRefLines(kind, bytes.NewReader(raw))
		if len(lineErrs) > 0 {
			for _, e := range lineErrs {
				fmt.Fprintf(os.Stderr, "%s:%s\n", fs.Arg(0), e.Error())
			}
			return fmt.Errorf("%d bad line(s) in %s; nothing imported", len(lineErrs), fs.Arg(0))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			strings.TrimRight(*base, "/")+"/v1/ref/"+string(kind), bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/x-ndjson")
		tokens.set(req)
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			var eb ingest.RefErrorBody
			_ = json.NewDecoder(resp.Body).Decode(&eb)
			for _, e := range eb.Lines {
				fmt.Fprintf(os.Stderr, "%s:%s\n", fs.Arg(0), e.Error())
			}
			return fmt.Errorf("import refused: %d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
		}
		var ack ingest.RefAck
		if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
			return err
		}
		fmt.Printf("imported %d %s record(s) from %s (%d lines validated)\n", ack.Imported, kind, fs.Arg(0), len(recs))
		return nil
	}
}
