package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/statepipe/statepipe/bench"
	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/schema"
)

// configMgrCommands are the verbs of `statepipe configmgr`.
func configMgrCommands() []command {
	return []command{
		{name: "import", summary: "send the .smx files of a directory (a copy of a ConfigMgr state-system inbox) in name order, resumably", run: cmdConfigMgrImport},
	}
}

// importStateName is the state file's name in the imported directory, by default.
const importStateName = ".statepipe-imported"

// cmdConfigMgrImport sends every .smx file of DIR, in name order, one request each, to POST
// /v1/configmgr/reports, signed with a gateway's identity. The state file lists each file the
// site accepted as "sha256  name" (sha256sum's format), appended and synced after each
// acceptance: a rerun sends only files not listed with their current content, so an import
// that was stopped resumes where it stopped and one that finished sends nothing.
func cmdConfigMgrImport(ctx context.Context, args []string) error {
	fs := newFlags("configmgr import", "--identity GATEWAY [--url URL] [--state FILE] [--move-to DIR] DIR")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	identity := fs.String("identity", "", "the gateway's identity file (statepipe client enroll --gateway): signs every document")
	site := fs.String("site", "", "without --identity: the site to send to unsigned (a site that accepts unsigned reports: statepipe run)")
	state := fs.String("state", "", "file listing the files accepted so far, as sha256sum does (default DIR/"+importStateName+")")
	moveTo := fs.String("move-to", "", "move each file the site accepted into this directory")
	wait := fs.Bool("wait", false, "ask the site to answer each file once it folded it (slower; for scripts that read reports right after)")
	quiet := fs.Bool("quiet", false, "print no progress line, only the summary and refusals")
	workers := fs.Int("workers", 4, "files sent at once: each is a document of its own client's, which the site orders by serial whatever order they arrive in")
	pos, err := fs.parse(args, "DIR")
	if err != nil {
		return err
	}
	dir := pos[0]
	if (*identity == "") == (*site == "") {
		return fs.fail("give --identity (a gateway's), or --site to send unsigned")
	}
	if *workers < 1 || *workers > 64 {
		return fs.fail("--workers must be from 1 to 64")
	}
	cfg := client.Config{URL: strings.TrimRight(*base, "/"), Site: *site, WaitFolded: *wait,
		EnrollToken: os.Getenv("STATEPIPE_ENROLL_TOKEN")} // renewing the gateway's credential, where the site asks for it
	if *identity != "" {
		if cfg.Identity, err = client.LoadIdentity(*identity); err != nil {
			return err
		}
		if cfg.Identity.Kind != schema.KindGateway {
			return fmt.Errorf("%s is the identity of client %s: relaying ConfigMgr documents needs a gateway's (statepipe client enroll --gateway)", *identity, cfg.Identity.Client)
		}
		cfg.Site, cfg.ClientID, cfg.Kind = cfg.Identity.Site, cfg.Identity.Client, schema.KindGateway
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "configmgr-import" // unsigned: names nobody; each document names its client
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	if *state == "" {
		*state = filepath.Join(dir, importStateName)
	}
	if *moveTo != "" {
		if err := os.MkdirAll(*moveTo, 0o755); err != nil {
			return fmt.Errorf("--move-to: %w", err)
		}
	}
	files, err := smxFiles(dir)
	if err != nil {
		return err
	}
	done, err := readImportState(*state)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(*state, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open the state file: %w", err)
	}
	defer log.Close()

	imp := &importer{c: c, state: log, moveTo: *moveTo, dir: dir, done: done, total: len(files), workers: *workers, start: time.Now()}
	if *identity != "" {
		defer func() {
			if id := c.Identity(); id != nil {
				_ = id.Save(*identity) // a renewed credential
			}
		}()
	}
	stop := func() {}
	if !*quiet {
		stop = imp.progress(os.Stderr)
	}
	err = imp.run(ctx, files)
	stop()
	fmt.Println(imp.summary())
	if err != nil {
		return err
	}
	if imp.refused > 0 {
		return fmt.Errorf("%d of %d files refused (above); fix or remove them and run again: the others are not sent twice", imp.refused, len(files))
	}
	return nil
}

// smxFiles lists DIR's .smx files (any case), sorted by name: ConfigMgr names inbox files so
// that name order is arrival order.
func smxFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !strings.EqualFold(filepath.Ext(e.Name()), ".smx") {
			continue
		}
		regular := e.Type().IsRegular()
		if e.Type()&os.ModeSymlink != 0 { // a link to a file is the file
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			regular = err == nil && fi.Mode().IsRegular()
		}
		if regular {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	return files, nil
}

// readImportState reads a state file ("sha256  name" lines); a missing one is empty.
func readImportState(path string) (done map[string]string, err error) {
	done = map[string]string{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the state file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	defer func() {
		if err == nil && sc.Err() != nil {
			err = fmt.Errorf("state file %s, line %d: %w", path, n+1, sc.Err())
		}
	}()
	for n = 1; sc.Scan(); n++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 2*sha256.Size {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			return nil, fmt.Errorf("state file %s, line %d: want \"SHA256  NAME\" (as sha256sum writes), got %q", path, n, sc.Text())
		}
		done[name] = sum
	}
	return done, nil
}

// importer sends files and keeps count.
type importer struct {
	c       *client.Client
	state   io.Writer
	moveTo  string
	dir     string
	done    map[string]string // name → sha256 of the content accepted (read only)
	workers int

	stateMu sync.Mutex // the state file

	mu                             sync.Mutex
	total, sent, already, refused  int
	messages, skipped, skippedStat int
	bytes                          int64
	start                          time.Time
}

// run sends each file not accepted before, taken in name order by --workers senders; a
// file the site refuses for good is reported and left, a site that stays unavailable stops
// the import (the files accepted so far are in the state file).
func (imp *importer) run(ctx context.Context, files []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan string)
	var wg sync.WaitGroup
	for range imp.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range next {
				if err := imp.one(ctx, name); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for _, name := range files {
		select {
		case next <- name:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// one sends one file unless it was accepted before with the same content, and records and
// moves it once accepted.
func (imp *importer) one(ctx context.Context, name string) error {
	if strings.ContainsFunc(name, unicode.IsControl) {
		// The state file holds a name per line: such a name could forge or break its lines.
		imp.count(func() { imp.refused++ })
		fmt.Fprintf(os.Stderr, "refused %q: its name holds a control character (a line break?): rename it\n", name)
		return nil
	}
	path := filepath.Join(imp.dir, name)
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hexSum := hex.EncodeToString(sum[:])
	if imp.done[name] == hexSum {
		imp.count(func() { imp.already++ })
		return imp.move(path, name)
	}
	answer, err := imp.c.Relay(ctx, body)
	if err != nil {
		var apiErr *client.APIError
		documents := answer != nil && len(answer.Documents) > 0
		if ctx.Err() != nil {
			return nil // another sender's error stopped the import
		}
		if !errors.As(err, &apiErr) || apiErr.Temporary() ||
			!documents && (apiErr.Status == http.StatusUnauthorized || apiErr.Status == http.StatusForbidden) {
			// The site is unavailable, or refused the gateway itself: the next files would
			// fare no better.
			return fmt.Errorf("%s: %w (run again to resume: the files accepted so far are not sent again)", name, err)
		}
		imp.count(func() { imp.refused++ })
		imp.refusal(name, answer, err)
		return nil
	}
	if err := imp.record(hexSum, name); err != nil {
		return err
	}
	imp.count(func() {
		imp.sent++
		imp.bytes += int64(len(body))
		for _, d := range answer.Documents {
			imp.messages += d.Messages
			for _, n := range d.Skipped {
				imp.skipped += n
			}
			for _, n := range d.SkippedStates {
				imp.skippedStat += n
			}
		}
	})
	return imp.move(path, name)
}

// record appends an accepted file to the state file and syncs it.
func (imp *importer) record(sum, name string) error {
	imp.stateMu.Lock()
	defer imp.stateMu.Unlock()
	if _, err := fmt.Fprintf(imp.state, "%s  %s\n", sum, name); err != nil {
		return fmt.Errorf("cannot record %s in the state file: %w", name, err)
	}
	if f, ok := imp.state.(*os.File); ok {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("cannot record %s in the state file: %w", name, err)
		}
	}
	return nil
}

func (imp *importer) count(f func()) {
	imp.mu.Lock()
	f()
	imp.mu.Unlock()
}

// move moves an accepted file into --move-to.
func (imp *importer) move(path, name string) error {
	if imp.moveTo == "" {
		return nil
	}
	if err := os.Rename(path, filepath.Join(imp.moveTo, name)); err != nil {
		return fmt.Errorf("accepted %s, but cannot move it: %w", name, err)
	}
	return nil
}

// refusal prints why a file was refused: each refused document's element and reason.
func (imp *importer) refusal(name string, answer *schema.ConfigMgrAnswer, err error) {
	var b strings.Builder
	fmt.Fprintf(&b, "refused %s:", name)
	listed := false
	if answer != nil {
		for i, d := range answer.Documents {
			if d.Error == nil {
				continue
			}
			listed = true
			fmt.Fprintf(&b, "\n  document %d", i+1)
			if d.Client != "" {
				fmt.Fprintf(&b, " (%s)", d.Client)
			}
			fmt.Fprintf(&b, ": %d %s: %s", d.Status, d.Error.Code, d.Error.Message)
			if d.Error.Field != "" && !strings.Contains(d.Error.Message, d.Error.Field) {
				fmt.Fprintf(&b, " (at %s)", d.Error.Field)
			}
		}
	}
	if !listed {
		fmt.Fprintf(&b, " %v", err)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

// progress draws a progress line on w once a second until the returned stop.
func (imp *importer) progress(w io.Writer) (stop func()) {
	draw := func(last bool) {
		imp.mu.Lock()
		defer imp.mu.Unlock()
		n := imp.sent + imp.already + imp.refused
		const width = 30
		filled := width
		if imp.total > 0 {
			filled = width * n / imp.total
		}
		el := time.Since(imp.start).Seconds()
		rate := float64(imp.sent) / max(el, 1e-3)
		line := fmt.Sprintf("\r[%s%s] %d/%d files  %d messages  %.0f files/s", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
			n, imp.total, imp.messages, rate)
		if left := imp.total - n; !last && left > 0 && rate > 0 {
			line += fmt.Sprintf("  ~%s left", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
		}
		fmt.Fprintf(w, "%-100s", line)
		if last {
			fmt.Fprintln(w)
		}
	}
	return bench.EverySecond(func() { draw(false) }, func() { draw(true) })
}

// summary says what the import did.
func (imp *importer) summary() string {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	el := time.Since(imp.start)
	s := fmt.Sprintf("imported %d files (%d state messages, %s) in %s", imp.sent, imp.messages, byteSize(imp.bytes), el.Round(time.Millisecond))
	if imp.skipped+imp.skippedStat > 0 {
		s += fmt.Sprintf("; skipped %d messages of topic types statepipe does not model and %d in states it does not", imp.skipped, imp.skippedStat)
	}
	s += fmt.Sprintf("; %d already imported; %d refused", imp.already, imp.refused)
	return s
}

// byteSize renders n bytes for people: B, KB, MB or GB (powers of 1,000).
func byteSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1e6:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	case n < 1e9:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
