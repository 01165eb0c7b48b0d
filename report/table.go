package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// The tables of `statepipe report NAME` (Definition.Table): a header that names what the
// report is about — site, list, collection, deployment, update titles, not ids alone — then
// aligned columns. Percentages of nothing are "—", not 0.00 %.

// table adapts a printer of a report's answer to Definition.Table: it decodes the JSON
// answer into R and returns the first write error.
func table[R any](print func(w io.Writer, r *R)) func(io.Writer, []byte) error {
	return func(w io.Writer, answer []byte) error {
		var r R
		if err := json.Unmarshal(answer, &r); err != nil {
			return fmt.Errorf("cannot read the report's answer: %w", err)
		}
		ew := &errWriter{w: w}
		print(ew, &r)
		return ew.err
	}
}

// errWriter keeps the first write error; later writes do nothing.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// columns returns a writer of aligned columns (cells separated by \t, rows ending in \n; the
// last cell, free text, is not padded). Flush it at the end.
func columns(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// percent renders part of total as a percentage, "—" when total is 0.
func percent(part, total int64) string {
	if total <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f %%", pct(part, total))
}

// plural renders n things: "1 machine", "2 machines".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// shortDuration renders a duration as Go writes it without its zero tails: 24h, 1h30m, 5m.
func shortDuration(s string) string {
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// named renders an id with its name: "id (name)", or the id alone.
func named(id, name string) string {
	if name == "" || name == id {
		return id
	}
	return id + " (" + name + ")"
}

// clipText shortens s to at most n runes, ending in … when cut.
func clipText(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// header prints the first line of a table: the report, what it is about and when.
func header(w io.Writer, report, site string, asOf time.Time, about ...string) {
	var parts []string
	for _, a := range about {
		if a != "" {
			parts = append(parts, a)
		}
	}
	fmt.Fprintf(w, "%s — site %s", report, site)
	if len(parts) > 0 {
		fmt.Fprint(w, ", "+strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, ", as of %s\n", asOf.UTC().Format(time.RFC3339))
}

// scopeText names a report's scope: a collection, or every client of the site.
func scopeText(collection, name string) string {
	if collection == "" {
		return "every client"
	}
	return "collection " + named(collection, name)
}

// listText names a report's update set: a list, ids, or the catalog.
func listText(list, name string, updates int) string {
	switch {
	case list != "":
		return "list " + named(list, name)
	case updates == 1:
		return "1 update"
	}
	return fmt.Sprintf("%d updates", updates)
}

// printIDs prints ids after label, at most max of them, saying how many more there are.
func printIDs(w io.Writer, label string, ids []string, total int64, max int) {
	if len(ids) == 0 {
		return
	}
	shown := ids[:min(len(ids), max)]
	fmt.Fprintf(w, "%s: %s", label, strings.Join(shown, ", "))
	if more := total - int64(len(shown)); more > 0 {
		fmt.Fprintf(w, " … and %d more (--json lists them)", more)
	}
	fmt.Fprintln(w)
}
