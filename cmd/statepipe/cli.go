package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

var httpClient = &http.Client{Timeout: 60 * time.Second}

// tokenFlags are the bearer tokens a verb sends: --admin-token ($STATEPIPE_ADMIN_TOKEN) on
// every verb that calls a guarded endpoint, and --reader-token ($STATEPIPE_READER_TOKEN) on
// the verbs readers use (report, sql). The admin token is sent when both are set.
type tokenFlags struct{ admin, reader *string }

func addTokenFlags(fs *flag.FlagSet, reader bool) tokenFlags {
	t := tokenFlags{admin: fs.String("admin-token", os.Getenv("STATEPIPE_ADMIN_TOKEN"), "the site's administrator token (default $STATEPIPE_ADMIN_TOKEN)")}
	if reader {
		t.reader = fs.String("reader-token", os.Getenv("STATEPIPE_READER_TOKEN"), "the site's reader token (default $STATEPIPE_READER_TOKEN)")
	}
	return t
}

// set puts the token on req.
func (t tokenFlags) set(req *http.Request) {
	tok := *t.admin
	if tok == "" && t.reader != nil {
		tok = *t.reader
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
}

// getJSON fetches url and decodes a JSON answer into v, turning error bodies into errors.
func doJSON(req *http.Request, v any) error {
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var eb schema.ErrorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
			msg := fmt.Sprintf("%d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
			if eb.Error.Field != "" {
				msg += " (field " + eb.Error.Field + ")"
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if raw, ok := v.(*json.RawMessage); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, v)
}

// reportParams are the query parameters of GET /v1/reports/NAME, one flag each.
var reportParams = []struct{ name, usage string }{
	{"site", "site (default: the one the URL serves)"},
	{"list", "update list id (compliance, computer, trend)"},
	{"updates", "comma-separated update ids (compliance, computer, trend)"},
	{"collection", "collection id (compliance, scan, update, trend)"},
	{"deployment", "deployment id (deployment; optional for errors)"},
	{"state", "drill down to the machines in this state (deployment)"},
	{"client", "client id (computer)"},
	{"update", "update id (update)"},
	{"days", "no successful scan in this many days (scan)"},
	{"from", "start, RFC 3339 (trend)"},
	{"to", "end, RFC 3339 (trend)"},
	{"step", "interval, e.g. 1h (trend)"},
}

func cmdReport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of a running statepipe")
	asJSON := fs.Bool("json", false, "print the JSON answer")
	tokens := addTokenFlags(fs, true)
	values := map[string]*string{}
	for _, p := range reportParams {
		values[p.name] = fs.String(p.name, "", p.usage)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("usage: statepipe report NAME [--url URL] [--json] [flags]; NAME is one of %s", strings.Join(report.ReportNames, ", "))
	}
	name := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range values {
		if *v != "" {
			q.Set(k, *v)
		}
	}
	u := strings.TrimRight(*base, "/") + "/v1/reports/" + url.PathEscape(name)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	tokens.set(req)
	var raw json.RawMessage
	if err := doJSON(req, &raw); err != nil {
		return fmt.Errorf("cannot get report %s: %w", name, err)
	}
	if *asJSON {
		_, err := os.Stdout.Write(raw)
		return err
	}
	switch name {
	case "compliance":
		return printCompliance(raw)
	case "deployment":
		var d report.Deployment
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		fmt.Printf("deployment %s (%s) — site %s, collection %s, %d targeted, as of %s\n", d.DeploymentID, d.Name, d.Site, d.Collection, d.Total, d.AsOf.Format(time.RFC3339))
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "state\tname\tclients")
		for _, st := range d.States {
			fmt.Fprintf(tw, "%d\t%s\t%d\n", st.State, st.Name, st.Clients)
		}
		_ = tw.Flush()
		for _, m := range d.Machines {
			fmt.Println(m)
		}
		return nil
	case "errors":
		var e report.Errors
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "error\tmachines\tdescription")
		for _, r := range e.Errors {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Hex, r.Machines, r.Description)
		}
		return tw.Flush()
	default:
		var pretty bytes.Buffer
		if json.Indent(&pretty, raw, "", "  ") == nil {
			raw = pretty.Bytes()
		}
		_, err := os.Stdout.Write(raw)
		return err
	}
}

func printCompliance(raw []byte) error {
	var c report.Compliance
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(os.Stdout, "compliance — site %s, as of %s\n", c.Site, c.AsOf.Format(time.RFC3339))
	fmt.Fprintln(tw, "update\tinstalled\trequired\tnot required\tunknown\ttotal\tcompliant %\t")
	for _, up := range c.Updates {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t\n", up.UpdateID, up.Installed, up.Required, up.NotRequired, up.Unknown, up.Total, up.CompliantPct)
	}
	_ = tw.Flush()
	fmt.Printf("computers: %d compliant, %d non-compliant, %d unknown, %d total\n",
		c.Computers.Compliant, c.Computers.NonCompliant, c.Computers.Unknown, c.Computers.Total)
	return nil
}

func cmdSQL(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sql", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of a running statepipe")
	asJSON := fs.Bool("json", false, "print the JSON answer")
	tokens := addTokenFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(`usage: statepipe sql [--url URL] [--json] "SELECT …"`)
	}
	body, _ := json.Marshal(report.SQLRequest{Query: fs.Arg(0)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/v1/sql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tokens.set(req)
	var raw json.RawMessage
	if err := doJSON(req, &raw); err != nil {
		return fmt.Errorf("cannot run sql: %w", err)
	}
	if *asJSON {
		_, err := os.Stdout.Write(raw)
		return err
	}
	var res schema.Result
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for i, c := range res.Columns {
		if i > 0 {
			fmt.Fprint(tw, "\t")
		}
		fmt.Fprint(tw, c.Name)
	}
	fmt.Fprintln(tw)
	for _, row := range res.Rows {
		for i, v := range row {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, v)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func cmdClient(ctx context.Context, args []string) error {
	const usage = "usage: statepipe client enroll --url URL --site SITE --id CLIENT --out IDENTITY | send --url URL [--identity IDENTITY] REPORT.json | rotate --url URL --identity IDENTITY | revoke --url URL --id CLIENT"
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "enroll":
		return cmdClientEnroll(ctx, args[1:])
	case "send":
		return cmdClientSend(ctx, args[1:])
	case "revoke":
		return cmdClientRevoke(ctx, args[1:])
	case "rotate":
		return cmdClientRotate(ctx, args[1:])
	}
	return errors.New(usage)
}

func cmdClientEnroll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client enroll", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	site := fs.String("site", "", "site code")
	id := fs.String("id", "", "client id (the machine's GUID)")
	name := fs.String("name", "", "machine name")
	token := fs.String("token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "the site's enrolment token, if it requires one (default $STATEPIPE_ENROLL_TOKEN)")
	grant := fs.String("grant", "", "the one-time grant an administrator's revocation of this client id answered (a revoked id enrols again only with it)")
	out := fs.String("out", "", "identity file to write (private key and credential; mode 0600); an existing one of the same client is enrolled again with its key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *site == "" || *id == "" || *out == "" {
		return errors.New("usage: statepipe client enroll --url URL --site SITE --id CLIENT --out IDENTITY")
	}
	cfg := client.Config{URL: *base, Site: *site, ClientID: *id, Name: *name, EnrollToken: *token, EnrollGrant: *grant}
	if prev, err := client.LoadIdentity(*out); err == nil && prev.Client == *id && prev.Site == *site {
		// The same machine enrolling again (its answer was lost, or it renews): its key, so the
		// site answers a renewal rather than a claim of its own id by another key.
		cfg.Identity = prev
	}
	c, err := client.Enroll(ctx, cfg)
	if err != nil {
		return err
	}
	ident := c.Identity()
	if err := ident.Save(*out); err != nil {
		return err
	}
	fmt.Printf("enrolled client %s at site %s; credential valid until %s; identity in %s\n", *id, *site, ident.Expires.Format(time.RFC3339), *out)
	return nil
}

func cmdClientSend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client send", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	identity := fs.String("identity", "", "identity file from statepipe client enroll: sign the report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: statepipe client send --url URL [--identity IDENTITY] REPORT.json")
	}
	raw, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var rep schema.Report
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&rep); err != nil {
		return fmt.Errorf("cannot read report %s: %w", fs.Arg(0), err)
	}
	if err := rep.Validate(schema.Limits{}); err != nil {
		return fmt.Errorf("cannot send report %s: %w", fs.Arg(0), err)
	}
	cfg := client.Config{URL: *base, Site: rep.Site, ClientID: rep.Client}
	if *identity != "" {
		if cfg.Identity, err = client.LoadIdentity(*identity); err != nil {
			return err
		}
		// A signed client's serials lie above its enrolment's serial base: the file's serials
		// count from there (serial 1 is the base + 1).
		for i := range rep.Messages {
			if rep.Messages[i].Serial >= schema.SerialSpan {
				return fmt.Errorf("cannot send report %s: messages[%d].serial %d: with --identity, serials count from the enrolment's serial base and must be below %d", fs.Arg(0), i, rep.Messages[i].Serial, schema.SerialSpan)
			}
			rep.Messages[i].Serial += cfg.Identity.SerialBase
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	ack, err := c.Send(ctx, &rep)
	if err != nil {
		return err
	}
	if *identity != "" {
		// A renewed credential is kept for next time.
		if err := c.Identity().Save(*identity); err != nil {
			return err
		}
	}
	fmt.Printf("accepted %d state messages for client %s at site %s\n", ack.Accepted, rep.Client, rep.Site)
	return nil
}

func cmdClientRotate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client rotate", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	identity := fs.String("identity", "", "identity file from statepipe client enroll: its key is replaced by a new one")
	token := fs.String("token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "the site's enrolment token, if it requires one (default $STATEPIPE_ENROLL_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *identity == "" {
		return errors.New("usage: statepipe client rotate --url URL --identity IDENTITY")
	}
	id, err := client.LoadIdentity(*identity)
	if err != nil {
		return err
	}
	c, err := client.New(client.Config{URL: *base, Site: id.Site, ClientID: id.Client, Identity: id, EnrollToken: *token})
	if err != nil {
		return err
	}
	// The new key is saved before the request goes out: if the answer is lost, running this
	// again completes the rotation.
	if err := c.Rotate(ctx, func(id *client.Identity) error { return id.Save(*identity) }); err != nil {
		return err
	}
	fmt.Printf("rotated client %s to a new key; the old key is refused from now on; identity in %s\n", id.Client, *identity)
	return nil
}

func cmdClientRevoke(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("client revoke", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	id := fs.String("id", "", "client id to revoke")
	tokens := addTokenFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("usage: statepipe client revoke --url URL --id CLIENT")
	}
	body, _ := json.Marshal(ingest.RevokeRequest{Client: *id})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/v1/revoke", bytes.NewReader(body))
	req.Header.Set("Content-Type", schema.MediaJSON)
	tokens.set(req)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke answered %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	var ans ingest.RevokeAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("cannot read the revocation's answer: %w", err)
	}
	fmt.Printf("revoked client %s: its key is refused from now on and can never enrol again.\n"+
		"The machine enrols again, with a new key, only with this one-time grant:\n"+
		"  statepipe client enroll --site SITE --id %s --grant %s --out IDENTITY\n", *id, *id, ans.Grant)
	return nil
}
