package main

// The command line's mechanics, shared by every verb: dispatch to sub-verbs with suggestions
// for a typo, -h that prints a verb's whole usage and exits 0, flags accepted before and after
// the positional arguments, and usage errors that exit 2.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// command is one verb: `statepipe NAME …`, or `statepipe PARENT NAME …` among sub-verbs.
type command struct {
	name, summary string
	// run runs the verb with the arguments after its name.
	run func(ctx context.Context, args []string) error
}

// usageError is a command line a verb cannot run (an unknown verb, a bad flag, a missing
// argument): main prints it, with the usage when there is one, and exits 2.
type usageError struct {
	path  string // the verb's, "client send"; empty: statepipe itself
	msg   string
	usage string // what to print after msg: a usage line or a list of verbs
}

func (e *usageError) Error() string { return e.msg }

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// printCommands writes the usage of a command made of verbs: `statepipe PATH COMMAND`, each verb
// with its summary in aligned columns.
func printCommands(w io.Writer, path string, cmds []command) {
	prefix := strings.TrimSpace("statepipe " + path)
	fmt.Fprintf(w, "usage: %s COMMAND [flags]\n\ncommands:\n", prefix)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n`%s COMMAND -h` prints a command's usage and flags.\n", prefix)
}

// find returns the verb called name among cmds; for an unknown name, a usage error that
// suggests the closest verbs.
func find(cmds []command, path, name string) (command, error) {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		if c.name == name {
			return c, nil
		}
		names[i] = c.name
	}
	msg := fmt.Sprintf("unknown command %q", name)
	if s := suggest(name, names); len(s) > 0 {
		msg += "; did you mean " + quoteOr(s) + "?"
	}
	return command{}, &usageError{path: path, msg: msg, usage: fmt.Sprintf("`%s help` lists the commands.", strings.TrimSpace("statepipe "+path))}
}

// subcommands returns the run function of a command made of sub-verbs, `statepipe PATH SUB …`:
// SUB runs with the arguments after it; -h lists the sub-verbs (exit 0); no or an unknown
// sub-verb is a usage error that suggests the closest. self, when not nil, is the command's
// own run when its first argument is a flag or absent (`statepipe projector [flags]` beside
// `statepipe projector rebuild`).
func subcommands(path string, subs []command, self func(context.Context, []string) error) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		if self != nil && (len(args) == 0 || strings.HasPrefix(args[0], "-")) {
			return self(ctx, args)
		}
		if len(args) == 0 {
			var list strings.Builder
			printCommands(&list, path, subs)
			return &usageError{path: path, msg: "a command is missing", usage: strings.TrimSpace(list.String())}
		}
		if isHelp(args[0]) {
			printCommands(os.Stdout, path, subs)
			return flag.ErrHelp
		}
		c, err := find(subs, path, args[0])
		if err != nil {
			return err
		}
		return c.run(ctx, args[1:])
	}
}

// withArgs returns run with first put before its arguments: a sub-verb of a command that
// dispatches on its own (dlq, bench).
func withArgs(run func(context.Context, []string) error, first string) func(context.Context, []string) error {
	return func(ctx context.Context, args []string) error {
		return run(ctx, append([]string{first}, args...))
	}
}

// suggest returns the names closest to typed (optimal string alignment distance, so that a
// swap of two letters counts one): those at the smallest distance, if it is at most 2 and less
// than half the typed length; otherwise the names typed begins (at least 2 letters typed).
func suggest(typed string, names []string) []string {
	best, out := 3, []string(nil)
	for _, n := range names {
		d := editDistance(typed, n)
		switch {
		case d < best && 2*d < max(len(typed), 2):
			best, out = d, []string{n}
		case d == best && out != nil:
			out = append(out, n)
		}
	}
	if out != nil || len(typed) < 2 {
		return out
	}
	for _, n := range names {
		if strings.HasPrefix(n, typed) {
			out = append(out, n)
		}
	}
	return out
}

// editDistance is the optimal string alignment distance of a and b: insertions, deletions,
// substitutions and transpositions of adjacent letters, each 1.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}

// quoteOr joins names as `"a"`, `"a" or "b"`, `"a", "b" or "c"`.
func quoteOr(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// verbFlags is a verb's flag set: -h prints the verb's usage line and every flag with its
// default on stdout (exit 0); a bad flag or a wrong number of arguments is a usage error
// (exit 2) that repeats the usage line.
type verbFlags struct {
	*flag.FlagSet
	synopsis string // the usage line: "statepipe client send [flags] REPORT.json"
}

// newFlags returns the flag set of `statepipe PATH`; synopsis is the usage after the path,
// e.g. "[flags] REPORT.json".
func newFlags(path, synopsis string) *verbFlags {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse returns the errors; main prints them once
	fs.Usage = func() {}
	return &verbFlags{FlagSet: fs, synopsis: "statepipe " + path + " " + synopsis}
}

// help writes the usage line and every flag with its default.
func (f *verbFlags) help(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n", f.synopsis)
	hasFlags := false
	f.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprint(w, "\nflags:\n")
		f.SetOutput(w)
		f.PrintDefaults()
		f.SetOutput(io.Discard)
	}
}

// fail returns a usage error saying msg, with the verb's usage line.
func (f *verbFlags) fail(msg string) error {
	return &usageError{path: f.Name(), msg: msg, usage: "usage: " + f.synopsis + "\n`statepipe " + f.Name() + " -h` lists every flag."}
}

// parse parses args and returns the positional arguments, one for each of names (what the
// usage calls them, e.g. "REPORT.json"). Flags may stand before, between and after them (Go's
// flag package stops at the first positional argument: `catalog import FILE --url U` was
// refused); after "--" every argument is positional.
func (f *verbFlags) parse(args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.help(os.Stdout)
			return nil, err
		}
		if err != nil {
			return nil, f.fail(err.Error())
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	switch {
	case len(pos) < len(names):
		return nil, f.fail(names[len(pos)] + " is missing")
	case len(pos) > len(names):
		return nil, f.fail(fmt.Sprintf("unexpected argument %q", pos[len(names)]))
	}
	return pos, nil
}
