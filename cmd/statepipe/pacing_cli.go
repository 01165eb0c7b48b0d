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
	"text/tabwriter"

	"github.com/statepipe/statepipe/pacing"
	"github.com/statepipe/statepipe/report"
)

// pacingCommands are the verbs of `statepipe pacing`: an administrator's hand on a site's
// pacing controller.
func pacingCommands() []command {
	return []command{
		{name: "status", summary: "show the controller: rate of new enrolments, report interval, decision and why, each signal", run: withArgs(cmdPacing, "status")},
		{name: "pause", summary: "admit no new client at the site until resume (every ingest node of the site, kept across restarts)", run: withArgs(cmdPacing, "pause")},
		{name: "resume", summary: "return to automatic control (after pause or set)", run: withArgs(cmdPacing, "resume")},
		{name: "set", summary: "set --rate N new enrolments a second until resume", run: withArgs(cmdPacing, "set")},
	}
}

func cmdPacing(ctx context.Context, args []string) error {
	verb := args[0]
	usage := "[--url URL] [--site S] [--admin-token T] [--json]"
	if verb == "set" {
		usage = "--rate N " + usage
	}
	fs := newFlags("pacing "+verb, usage)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site (where its ingest runs)")
	site := fs.String("site", "", "the site, where one listener serves several (statepipe run --topology)")
	asJSON := fs.Bool("json", false, "print the controller's status as JSON")
	var rate *float64
	if verb == "set" {
		rate = fs.Float64("rate", 0, "new enrolments a second each ingest node of the site admits (positive)")
	}
	tokens := addTokenFlags(fs.FlagSet, true)
	if _, err := fs.parse(args[1:]); err != nil {
		return err
	}
	u := strings.TrimRight(*base, "/") + "/v1/pacing"
	method, body := http.MethodGet, []byte(nil)
	switch verb {
	case "pause", "resume":
		method, u = http.MethodPost, u+"/"+verb
	case "set":
		if !(*rate > 0) {
			return fs.fail("--rate must be a positive number of new enrolments a second (pause to admit none)")
		}
		method, u = http.MethodPost, u+"/rate"
		body, _ = json.Marshal(map[string]float64{"rate": *rate})
	}
	if *site != "" {
		u += "?site=" + url.QueryEscape(*site)
	}
	req, _ := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tokens.set(req)
	var st pacing.Status
	if err := doJSON(req, &st); err != nil {
		return fmt.Errorf("cannot %s the pacing: %w", verb, err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printPacing(st)
	return nil
}

// printPacing prints a controller's status for people.
func printPacing(st pacing.Status) {
	rate := fmt.Sprintf("%.3g new enrolments/s (per ingest node)", st.EnrollRate)
	if st.Mode == pacing.ModeOff && st.EnrollRate == 0 {
		rate = "unlimited (--ingest.enroll-rate 0)"
	}
	fmt.Printf("mode:            %s\ndecision:        %s — %s\nenrolment rate:  %s\n", st.Mode, st.Decision, st.Reason, rate)
	if st.ReportInterval > 0 {
		fmt.Printf("report interval: %s\n", report.Seconds(st.ReportInterval))
	}
	fmt.Printf("pressure:        %.2f of target (%s); lag %s, target %s\nphases may be released: %v\n", st.Pressure, st.Limiting,
		report.Seconds(st.LagSeconds), report.Seconds(st.TargetSeconds), st.BacklogOK)
	if len(st.Signals) == 0 {
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "signal\tvalue\ttarget\tpressure\tread")
	for _, s := range st.Signals {
		read := "never"
		if s.AgeSeconds != nil {
			read = report.Seconds(*s.AgeSeconds) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\n", s.Name, unit(s.Value, s.Unit), unit(s.Target, s.Unit), s.Pressure, read)
	}
	_ = tw.Flush()
}

func unit(v float64, u string) string {
	switch u {
	case "s":
		return report.Seconds(v)
	case "share":
		return fmt.Sprintf("%.2g %%", 100*v)
	}
	return fmt.Sprintf("%.2f", v)
}
