package main

// `statepipe report NAME` and `statepipe sql`: the reader's side of a running site. The
// report verbs, their flags, help and tables all come from report.Reports.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// cmdReport runs `statepipe report NAME [flags]`: -h lists the reports, NAME -h a report's
// flags; a typo'd name gets a suggestion.
func cmdReport(ctx context.Context, args []string) error {
	var cmds []command
	for _, d := range report.Reports() {
		cmds = append(cmds, command{name: d.Name, summary: d.Summary, run: func(ctx context.Context, args []string) error {
			return runReport(ctx, d, args, os.Stdout)
		}})
	}
	return subcommands("report", cmds, nil)(ctx, args)
}

// runReport gets report d from a running site, with the flags args, and prints its table
// (or, with --json, its JSON) on out.
func runReport(ctx context.Context, d report.Definition, args []string, out io.Writer) error {
	fs := newFlags("report "+d.Name, "[--url URL] [--json] [flags]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of a running statepipe")
	asJSON := fs.Bool("json", false, "print the JSON answer instead of the table")
	tokens := addTokenFlags(fs.FlagSet, true)
	query := reportParamFlags(fs, d)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	q, err := query()
	if err != nil {
		return err
	}
	u := strings.TrimRight(*base, "/") + "/v1/reports/" + url.PathEscape(d.Name)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fs.fail(fmt.Sprintf("--url %q: %v", *base, err))
	}
	tokens.set(req)
	var raw json.RawMessage
	if err := doJSON(req, &raw); err != nil {
		return fmt.Errorf("cannot get report %s: %w", d.Name, err)
	}
	if *asJSON {
		_, err := out.Write(raw)
		return err
	}
	return d.Table(out, raw)
}

// reportParamFlags adds to fs a flag for each parameter of report d and the common ones — an
// integer parameter as an int flag with its default, so that help shows its type and default —
// and returns what makes the query of the flags given, once fs is parsed (a usage error for a
// required one missing). A flag not given is not sent: the site applies the default.
func reportParamFlags(fs *verbFlags, d report.Definition) func() (url.Values, error) {
	strs, ints, bools := map[string]*string{}, map[string]*int{}, map[string]*bool{}
	for _, p := range slices.Concat(d.Params, report.CommonParams()) {
		help := p.Help
		if p.Required {
			help += " (required)"
		}
		if p.Name == "wait" { // true or false: a switch on the command line
			bools[p.Name] = fs.Bool(p.Name, false, strings.TrimPrefix(help, "true: "))
			continue
		}
		if p.Kind == report.KindInt {
			ints[p.Name] = fs.Int(p.Name, p.Default, help)
		} else {
			strs[p.Name] = fs.String(p.Name, "", help)
		}
	}
	return func() (url.Values, error) {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		q := url.Values{}
		for name, v := range strs {
			if *v != "" {
				q.Set(name, *v)
			}
		}
		for name, v := range ints {
			if given[name] {
				q.Set(name, strconv.Itoa(*v))
			}
		}
		for name, v := range bools {
			if *v {
				q.Set(name, "true")
			}
		}
		for _, p := range d.Params {
			if p.Required && !q.Has(p.Name) {
				return nil, fs.fail("--" + p.Name + " is required")
			}
		}
		return q, nil
	}
}

// cmdSQL runs `statepipe sql "SELECT …"`: the statement goes as text, the answer comes back as a
// table (or, with --json, as JSON).
func cmdSQL(ctx context.Context, args []string) error { return runSQL(ctx, args, os.Stdout) }

func runSQL(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("sql", `[--url URL] [--site CODE] [--json] "SELECT …"`)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of a running statepipe")
	site := fs.String("site", "", "the site whose database to query, where one process serves several (statepipe run --topology; default: its root)")
	asJSON := fs.Bool("json", false, "print the JSON answer instead of the table")
	tokens := addTokenFlags(fs.FlagSet, true)
	pos, err := fs.parse(args, `"SELECT …"`)
	if err != nil {
		return err
	}
	u := strings.TrimRight(*base, "/") + "/v1/sql"
	if *site != "" {
		u += "?site=" + url.QueryEscape(*site)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(pos[0]))
	if err != nil {
		return fs.fail(fmt.Sprintf("--url %q: %v", *base, err))
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	tokens.set(req)
	var raw json.RawMessage
	if err := doJSON(req, &raw); err != nil {
		return fmt.Errorf("cannot run sql: %w", err)
	}
	if *asJSON {
		_, err := out.Write(raw)
		return err
	}
	return printSQL(out, raw)
}

// sqlTable is POST /v1/sql's answer as the CLI reads it: numbers exactly as sent.
type sqlTable struct {
	Columns []schema.Column `json:"columns"`
	Rows    [][]any         `json:"rows"`
}

// printSQL prints an analyst answer as a table: numbers exactly as the site wrote them (an
// Int64 beyond 2^53 or an Int32 error code is not passed through a float), NULL as NULL,
// arrays as [a, b].
func printSQL(w io.Writer, raw []byte) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var res sqlTable
	if err := d.Decode(&res); err != nil {
		return fmt.Errorf("cannot read the answer: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, c := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, report.CellText(c.Name))
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		for i, v := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, sqlCell(v, false))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Rows) != 1 {
		_, err := fmt.Fprintf(w, "(%d rows)\n", len(res.Rows))
		return err
	}
	return nil
}

// sqlCell renders one value of an answer: NULL, a number as sent, a string as it is (quoted
// inside an array, where a comma could not be told from a separator), [a, b] for an array, a
// tuple or map as its JSON — its control characters escaped (report.CellText), so that a
// value is always one line of one cell and never reaches the terminal as an escape sequence.
func sqlCell(v any, nested bool) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case json.Number:
		return x.String()
	case string:
		if nested {
			return report.CellText(schema.QuoteSQL(x))
		}
		return report.CellText(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = sqlCell(e, true)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return report.CellText(fmt.Sprint(v))
	}
	return report.CellText(string(b)) // JSON leaves DEL and C1 as they are
}
