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
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
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

// tokenHint is what to add to an answer of status to req: how to give the token the site asked
// for (a site started with --admin-token or --reader-token refuses the verbs without it).
// Reports and SQL take the reader's or the administrator's token, the rest the administrator's
// (roles.go).
func tokenHint(req *http.Request, status int) string {
	if status != http.StatusUnauthorized {
		return ""
	}
	give := "--admin-token T or $STATEPIPE_ADMIN_TOKEN"
	if p := req.URL.Path; strings.HasSuffix(p, "/v1/sql") || strings.Contains(p, "/v1/reports/") || strings.HasSuffix(p, "/phases") ||
		(req.Method == http.MethodGet && strings.HasSuffix(p, "/v1/pacing")) {
		give = "--reader-token T or $STATEPIPE_READER_TOKEN (or the administrator's)"
	}
	if req.Header.Get("Authorization") != "" {
		return "; the token given is not one the site accepts here: give " + give
	}
	return "; the site wants a token: give " + give
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
			return errors.New(msg + tokenHint(req, resp.StatusCode))
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if raw, ok := v.(*json.RawMessage); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, v)
}

// clientCommands are the verbs of `statepipe client`: a machine's side.
func clientCommands() []command {
	return []command{
		{name: "enroll", summary: "claim a client id at a site and write its identity file (private key and credential)", run: cmdClientEnroll},
		{name: "send", summary: "send a report file, signed with --identity", run: cmdClientSend},
		{name: "rotate", summary: "give the identity's client id a new key; the old one is refused from then on", run: cmdClientRotate},
		{name: "revoke", summary: "retire a client id's key for good (administrators); answers a one-time grant to enrol again", run: cmdClientRevoke},
	}
}

func cmdClientEnroll(ctx context.Context, args []string) error {
	fs := newFlags("client enroll", "--site SITE --id CLIENT --out IDENTITY [--url URL] [flags]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	site := fs.String("site", "", "site code")
	id := fs.String("id", "", "client id (the machine's GUID)")
	name := fs.String("name", "", "machine name")
	token := fs.String("token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "the site's enrolment token, if it requires one (default $STATEPIPE_ENROLL_TOKEN)")
	grant := fs.String("grant", "", "the one-time grant an administrator's revocation of this client id answered (a revoked id enrols again only with it)")
	out := fs.String("out", "", "identity file to write (private key and credential; mode 0600); an existing one of the same client and site is enrolled again with its key")
	force := fs.Bool("force", false, "overwrite an --out file that holds another identity (its private key is lost)")
	gateway := fs.Bool("gateway", false, "enrol a gateway, which relays ConfigMgr documents for every client of the site (statepipe configmgr import); needs --admin-token")
	adminToken := fs.String("admin-token", os.Getenv("STATEPIPE_ADMIN_TOKEN"), "with --gateway: the site's administrator token (default $STATEPIPE_ADMIN_TOKEN)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if *site == "" || *id == "" || *out == "" {
		return fs.fail("--site, --id and --out are required")
	}
	cfg := client.Config{URL: *base, Site: *site, ClientID: *id, Name: *name, EnrollToken: *token, EnrollGrant: *grant}
	what := "client"
	if *gateway {
		cfg.Kind, cfg.EnrollToken, what = schema.KindGateway, *adminToken, "gateway"
	}
	again := false
	switch prev, err := client.LoadIdentity(*out); {
	case err == nil && prev.Client == *id && prev.Site == *site && prev.Kind != cfg.Kind:
		return fmt.Errorf("cannot enrol: %s holds the identity of %s at site %s as a %s: drop or add --gateway to match it", *out, prev.Client, prev.Site, kindName(prev.Kind))
	case err == nil && prev.Client == *id && prev.Site == *site:
		// The same machine enrolling again (its answer was lost, or it renews, or its site
		// was reset): its key, so the site answers a renewal rather than a claim of its own id
		// by another key.
		cfg.Identity, again = prev, true
	case errors.Is(err, os.ErrNotExist):
	case *force:
	case err == nil:
		return fmt.Errorf("cannot enrol: %s holds the identity of client %s at site %s, whose private key would be lost: choose another --out, or --force to overwrite it", *out, prev.Client, prev.Site)
	default:
		return fmt.Errorf("cannot enrol: %s exists and is not an identity this can enrol again (%v): choose another --out, or --force to overwrite it", *out, err)
	}
	c, err := client.Enroll(ctx, cfg)
	if err != nil {
		return err
	}
	ident := c.Identity()
	if err := ident.Save(*out); err != nil {
		return err
	}
	how := "enrolled"
	if again {
		how = "enrolled again, with the key of " + *out + ","
	}
	fmt.Printf("%s %s %s at site %s; credential valid until %s; identity in %s\n", how, what, *id, *site, ident.Expires.Format(time.RFC3339), *out)
	return nil
}

// kindName names an identity's kind.
func kindName(kind string) string {
	if kind == schema.KindGateway {
		return "gateway"
	}
	return "client"
}

// enrollAgainHint adds to err, when the site refused identity's credential as not signed by
// it, what to do: the site was reset (or its key replaced) since the identity was enrolled.
func enrollAgainHint(err error, base, file string, id *client.Identity) error {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || !apiErr.ForeignCredential() {
		return err
	}
	return fmt.Errorf("%w\n%s was not enrolled at the site %s answers for: the site may have been reset or its key replaced since; enrol again:\n"+
		"  statepipe client enroll --url %s --site %s --id %s --out %s", err, file, base, base, id.Site, id.Client, file)
}

func cmdClientSend(ctx context.Context, args []string) error {
	fs := newFlags("client send", "[--url URL] [--identity IDENTITY] [--no-wait] REPORT.json")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	identity := fs.String("identity", "", "identity file from statepipe client enroll: sign the report")
	noWait := fs.Bool("no-wait", false, "answer once Kafka acknowledged the report, without waiting for the site to fold it (reports may not show it for a few seconds)")
	pos, err := fs.parse(args, "REPORT.json")
	if err != nil {
		return err
	}
	file := pos[0]
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var rep schema.Report
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&rep); err != nil {
		return fmt.Errorf("cannot read report %s: %w", file, err)
	}
	if err := rep.Validate(schema.Limits{}); err != nil {
		return fmt.Errorf("cannot send report %s: %w", file, err)
	}
	cfg := client.Config{URL: *base, Site: rep.Site, ClientID: rep.Client, WaitFolded: !*noWait}
	if *identity != "" {
		if cfg.Identity, err = client.LoadIdentity(*identity); err != nil {
			return err
		}
		// A signed client's serials lie above its enrolment's serial base: the file's serials
		// count from there (serial 1 is the base + 1).
		for i := range rep.Messages {
			if rep.Messages[i].Serial >= schema.SerialSpan {
				return fmt.Errorf("cannot send report %s: messages[%d].serial %d: with --identity, serials count from the enrolment's serial base and must be below %d", file, i, rep.Messages[i].Serial, schema.SerialSpan)
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
		if cfg.Identity != nil {
			return enrollAgainHint(err, *base, *identity, cfg.Identity)
		}
		return err
	}
	if *identity != "" {
		// A renewed credential is kept for next time.
		if err := c.Identity().Save(*identity); err != nil {
			return err
		}
	}
	fmt.Printf("accepted %d state messages for client %s at site %s\n", ack.Accepted, rep.Client, rep.Site)
	if ack.Message != "" {
		fmt.Fprintln(os.Stderr, "note:", ack.Message)
	}
	return nil
}

func cmdClientRotate(ctx context.Context, args []string) error {
	fs := newFlags("client rotate", "--identity IDENTITY [--url URL] [flags]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	identity := fs.String("identity", "", "identity file from statepipe client enroll: its key is replaced by a new one")
	token := fs.String("token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "the site's enrolment token, if it requires one (default $STATEPIPE_ENROLL_TOKEN)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if *identity == "" {
		return fs.fail("--identity is required")
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
		return enrollAgainHint(err, *base, *identity, id)
	}
	fmt.Printf("rotated client %s to a new key; the old key is refused from now on; identity in %s\n", id.Client, *identity)
	return nil
}

func cmdClientRevoke(ctx context.Context, args []string) error {
	fs := newFlags("client revoke", "--id CLIENT [--url URL] [--site CODE] [--admin-token T]")
	base := fs.String("url", "http://127.0.0.1:8080", "base URL of the site's ingest")
	id := fs.String("id", "", "client id to revoke")
	site := fs.String("site", "", "the client's site, where one process serves several (statepipe run --topology; default: its root)")
	tokens := addTokenFlags(fs.FlagSet, false)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if *id == "" {
		return fs.fail("--id is required")
	}
	body, _ := json.Marshal(ingest.RevokeRequest{Client: *id})
	u := strings.TrimRight(*base, "/") + "/v1/revoke"
	if *site != "" {
		u += "?site=" + url.QueryEscape(*site)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", schema.MediaJSON)
	tokens.set(req)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revoke answered %d: %s%s", resp.StatusCode, strings.TrimSpace(string(raw)), tokenHint(req, resp.StatusCode))
	}
	var ans ingest.RevokeAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("cannot read the revocation's answer: %w", err)
	}
	if ans.Kind == schema.KindGateway {
		fmt.Printf("revoked gateway %s: its key is refused from now on and can never enrol again, and every gateway of the site\n"+
			"now relays above anything it sent. The gateway enrols again, with a new key, only with this one-time grant:\n"+
			"  statepipe client enroll --gateway --admin-token T --site SITE --id %s --grant %s --out IDENTITY\n", *id, *id, ans.Grant)
		return nil
	}
	fmt.Printf("revoked client %s: its key is refused from now on and can never enrol again.\n"+
		"The machine enrols again, with a new key, only with this one-time grant:\n"+
		"  statepipe client enroll --site SITE --id %s --grant %s --out IDENTITY\n", *id, *id, ans.Grant)
	return nil
}
