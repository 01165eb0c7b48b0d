package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// The tables of `statepipe report NAME` (Definition.Table): a header that names what the
// report is about — site, list, collection, deployment, update titles, not ids alone — then
// aligned columns. Percentages of nothing are "—", not 0.00 %. Every string of the answer is
// shown through CellText: a title, name or id that holds control characters cannot add a row,
// break the alignment or reach the terminal as an escape sequence.

// table adapts a printer of a report's answer to Definition.Table: it decodes the JSON
// answer into R, every string escaped by CellText, and returns the first write error.
func table[R any](print func(w io.Writer, r *R)) func(io.Writer, []byte) error {
	return func(w io.Writer, answer []byte) error {
		var r R
		escaped, err := escapeAnswer(answer)
		if err == nil {
			err = json.Unmarshal(escaped, &r)
		}
		if err != nil {
			return fmt.Errorf("cannot read the report's answer: %w", err)
		}
		ew := &errWriter{w: w}
		print(ew, &r)
		return ew.err
	}
}

// escapeAnswer returns the JSON answer with every string (and object key) passed through
// CellText; numbers are kept exactly as written.
func escapeAnswer(answer []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(answer))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(mapStrings(v, CellText, CellText))
}

// mapStrings returns v, a decoded JSON value, with f applied to every string and key to every
// object key.
func mapStrings(v any, f, key func(string) string) any {
	switch x := v.(type) {
	case string:
		return f(x)
	case []any:
		for i := range x {
			x[i] = mapStrings(x[i], f, key)
		}
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[key(k)] = mapStrings(e, f, key)
		}
		return m
	}
	return v
}

// CellText returns s as it may be shown in one cell or header of a table printed on a
// terminal (the report tables and `statepipe sql`): control characters — C0 (\t, \n and \r
// included), DEL and C1 — and bytes that are not UTF-8 are written as Go escapes without the
// quotes (\t, \n, \x1b, \x7f, \u0085, \xff), so a cell is always one line, the columns stay
// aligned and nothing reaches the terminal as an escape sequence. Everything else, backslashes
// included, is shown as it is; CellText of its own result changes nothing.
func CellText(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || isControl(r) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case isControl(r):
			q := strconv.QuoteRune(r) // '\n', '\x1b', '\u0085'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isControl reports whether r is a control character: C0, DEL or C1.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

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
