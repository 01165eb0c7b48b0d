package main

// The trust boundary end to end (issue 4): enrolment, signed reports and every rejection
// path, each asserting the status and the error body's field, against a site with
// --ingest.auth required, the real HTTP stack and Kafka.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/schema"
)

type trustSite struct {
	*testSite
	key ed25519.PrivateKey // the site key, as an attacker who stole it would have it
}

func startTrustSite(t *testing.T, tune func(*runConfig)) *trustSite {
	t.Helper()
	data := t.TempDir()
	s := startSite(t, siteOpts{data: data, tune: func(c *runConfig) {
		c.Auth = authDefaults(ingest.AuthRequired)
		c.AdminToken = "admin-secret"
		if tune != nil {
			tune(c)
		}
	}})
	key, err := ingest.LoadOrCreateSiteKey(filepath.Join(data, "site-"+s.code+".key"))
	if err != nil {
		t.Fatal(err)
	}
	return &trustSite{s, key}
}

// post sends body with the given headers and returns the status, Retry-After and error body.
func (s *trustSite) post(t *testing.T, path string, body []byte, headers map[string]string) (int, string, schema.ErrorDetail) {
	t.Helper()
	status, retry, raw := postWith(t, s.url+path, body, headers)
	var eb schema.ErrorBody
	_ = json.Unmarshal(raw, &eb)
	return status, retry, eb.Error
}

// postWith posts a JSON body with headers to url and returns the status, Retry-After and the
// answer's body.
func postWith(t *testing.T, url string, body []byte, headers map[string]string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", schema.MediaJSON)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), raw
}

func reportJSON(client, site string, serial uint64, t int64) []byte {
	b, _ := json.Marshal(schema.Report{V: 1, Client: client, Site: site, Messages: []schema.StateMessage{
		{Serial: serial, Time: t, TopicType: schema.TopicUpdateCompliance, TopicID: "KB1", State: 2}}})
	return b
}

// signed returns the headers of body signed by key with credential.
func signed(cred string, key ed25519.PrivateKey, body []byte) map[string]string {
	return map[string]string{schema.HeaderCredential: cred, schema.HeaderSignature: schema.SignBody(key, body)}
}

func TestTrustBoundaryAcceptsOnlyEnrolledSignedReports(t *testing.T) {
	// The cases below use a valid credential 8 times before the rate is tested.
	s := startTrustSite(t, func(c *runConfig) { c.Auth.ClientRate, c.Auth.ClientBurst = 1, 12 })
	ctx := context.Background()
	alice, err := client.Enroll(ctx, client.Config{URL: s.url, Site: s.code, ClientID: "alice", Name: "ALICE-PC"})
	if err != nil {
		t.Fatalf("enrol: %v", err)
	}
	if err := alice.Report(ctx, true, msg(0, "KB1", 3)); err != nil {
		t.Fatalf("signed report refused: %v", err)
	}
	id := alice.Identity()
	aliceKey := ed25519.PrivateKey(id.PrivateKey)
	now := time.Now()
	sign := func(c schema.Credential, key ed25519.PrivateKey) string {
		tok, err := schema.SignCredential(c, key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	pub := aliceKey.Public().(ed25519.PublicKey)
	_, forger, _ := ed25519.GenerateKey(rand.Reader)
	_, mallory, _ := ed25519.GenerateKey(rand.Reader)

	base := id.SerialBase // alice's serials lie above it
	if base != schema.SerialBase(1) {
		t.Fatalf("alice's first enrolment has serial base %d, want incarnation 1's %d", base, schema.SerialBase(1))
	}
	body := reportJSON("alice", s.code, base+100, now.UnixMilli())
	tampered := bytes.Replace(body, []byte(`"state":2`), []byte(`"state":3`), 1)
	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
		field   string
		reason  string
	}{
		{"unsigned", body, nil, 401, schema.HeaderCredential, "unsigned"},
		{"signature over another body", tampered, signed(id.Credential, aliceKey, body), 401, schema.HeaderSignature, "bad_signature"},
		{"signed with another key", body, signed(id.Credential, mallory, body), 401, schema.HeaderSignature, "bad_signature"},
		{"credential forged by another site key", body, signed(sign(schema.Credential{Client: "alice", Site: s.code, Key: pub, Inc: 1,
			Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}, forger), aliceKey, body), 401, schema.HeaderCredential, "bad_credential"},
		{"garbage credential", body, signed("not-a-credential", aliceKey, body), 401, schema.HeaderCredential, "bad_credential"},
		{"expired credential", body, signed(sign(schema.Credential{Client: "alice", Site: s.code, Key: pub, Inc: 1,
			Issued: now.Add(-2 * time.Hour).UnixMilli(), Expires: now.Add(-time.Hour).UnixMilli()}, s.key), aliceKey, body), 401, schema.HeaderCredential, "expired_credential"},
		{"reporting for another client", reportJSON("bob", s.code, base+1, now.UnixMilli()),
			signed(id.Credential, aliceKey, reportJSON("bob", s.code, base+1, now.UnixMilli())), 403, "client", "wrong_client"},
		{"credential of another site", body, signed(sign(schema.Credential{Client: "alice", Site: "P99", Key: pub, Inc: 1,
			Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}, s.key), aliceKey, body), 403, "site", "wrong_site"},
		{"clock far ahead", reportJSON("alice", s.code, base+101, now.Add(3*time.Hour).UnixMilli()),
			signed(id.Credential, aliceKey, reportJSON("alice", s.code, base+101, now.Add(3*time.Hour).UnixMilli())), 400, "messages[0].time", "clock_skew"},
		{"clock far behind", reportJSON("alice", s.code, base+102, -1<<62),
			signed(id.Credential, aliceKey, reportJSON("alice", s.code, base+102, -1<<62)), 400, "messages[0].time", "clock_skew"},
		{"serial below the enrolment's range", reportJSON("alice", s.code, 100, now.UnixMilli()),
			signed(id.Credential, aliceKey, reportJSON("alice", s.code, 100, now.UnixMilli())), 400, "messages[0].serial", "serial_range"},
		{"serial above the enrolment's range", reportJSON("alice", s.code, base+schema.SerialSpan, now.UnixMilli()),
			signed(id.Credential, aliceKey, reportJSON("alice", s.code, base+schema.SerialSpan, now.UnixMilli())), 400, "messages[0].serial", "serial_range"},
		{"unsigned report for an enrolled client", reportJSON("alice", s.code, base+103, now.UnixMilli()), nil, 401, schema.HeaderCredential, "unsigned"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, _, e := s.post(t, "/v1/reports", c.body, c.headers)
			if status != c.status || e.Field != c.field || e.Message == "" {
				t.Errorf("got %d %+v, want %d naming %q", status, e, c.status, c.field)
			}
		})
	}

	// Per-client rate: the burst at 1 report/s, then 429 with Retry-After; other clients
	// are not affected.
	var paced bool
	for i := 0; i < 20 && !paced; i++ {
		b := reportJSON("alice", s.code, base+uint64(200+i), time.Now().UnixMilli())
		status, retry, e := s.post(t, "/v1/reports", b, signed(id.Credential, aliceKey, b))
		if status == 429 {
			paced = true
			if retry == "" || e.Field != "client" || e.Code != schema.CodePaced {
				t.Errorf("429 without Retry-After or naming %q (%+v)", e.Field, e)
			}
		}
	}
	if !paced {
		t.Error("a client over its rate was never answered 429")
	}

	// Nothing refused reached the store: alice's only folded report is the first one.
	time.Sleep(300 * time.Millisecond)
	res, code := s.sqlAdmin(t, fmt.Sprintf("SELECT count() FROM %s.state_messages WHERE serial != %d AND NOT (serial >= %d AND serial < %d)", database(s.code), base+1, base+200, base+300))
	if code != 200 || res.Rows[0][0].(float64) != 0 {
		t.Errorf("refused reports reached the raw log: %d %v", code, res.Rows)
	}
	metrics := s.metrics(t)
	for _, c := range cases {
		if !strings.Contains(metrics, fmt.Sprintf(`statepipe_ingest_rejected_total{reason=%q,site=%q}`, c.reason, s.code)) {
			t.Errorf("no rejection counted for reason %s", c.reason)
		}
	}
}

func TestEnrolmentClaimsAnIdAndRevocationFreesIt(t *testing.T) {
	t.Parallel()
	s := startTrustSite(t, func(c *runConfig) { c.Auth.EnrollToken = "enrol-secret" })
	ctx := context.Background()
	cfg := client.Config{URL: s.url, Site: s.code, ClientID: "pc-1"}
	if _, err := client.Enroll(ctx, cfg); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("enrolment without the token: got %v, want 401", err)
	}
	cfg.EnrollToken = "enrol-secret"
	first, err := client.Enroll(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Another machine claiming the id with its own key is refused once every ingest node
	// has seen the claim (the enrolments topic is mirrored asynchronously).
	eventually(t, func() string {
		_, err := client.Enroll(ctx, cfg)
		if err == nil || !strings.Contains(err.Error(), "409") {
			return fmt.Sprintf("second enrolment of a claimed id with another key: got %v, want 409", err)
		}
		return ""
	})
	// The holder may renew with the same key.
	cfg.Identity = first.Identity()
	if _, err := client.Enroll(ctx, cfg); err != nil {
		t.Fatalf("re-enrolment with the same key: %v", err)
	}
	if err := first.Report(ctx, false, msg(0, "KB1", 2)); err != nil {
		t.Fatal(err)
	}
	// Administrative endpoints need the admin token.
	if status, _, e := s.post(t, "/v1/revoke", []byte(`{"client":"pc-1"}`), nil); status != 401 || e.Field != "Authorization" {
		t.Fatalf("revoke without the admin token: got %d %+v", status, e)
	}
	if _, code := s.sql("SELECT 1"); code != 401 {
		t.Errorf("SQL without the admin token: got %d, want 401", code)
	}
	grant := revoke(t, s.url, "pc-1", "admin-secret")
	eventually(t, func() string {
		err := first.Report(ctx, false, msg(0, "KB1", 3))
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "revoked") {
			return fmt.Sprintf("report with a revoked credential: got %v, want 401 revoked", err)
		}
		return ""
	})
	// The id waits for the machine: a new key may claim it with the revocation's grant.
	_, fresh, _ := ed25519.GenerateKey(rand.Reader)
	cfg.EnrollGrant = grant
	eventually(t, func() string {
		cfg.Identity = &client.Identity{Client: "pc-1", Site: s.code, PrivateKey: fresh}
		c, err := client.Enroll(ctx, cfg)
		if err != nil {
			return "enrolment after revocation: " + err.Error()
		}
		if err := c.Report(ctx, true, msg(0, "KB1", 3)); err != nil {
			return "report after re-enrolment: " + err.Error()
		}
		return ""
	})
}

func TestSDKRenewsAnExpiredCredential(t *testing.T) {
	t.Parallel()
	s := startTrustSite(t, func(c *runConfig) { c.Auth.CredentialTTL = time.Second })
	ctx := context.Background()
	c, err := client.Enroll(ctx, client.Config{URL: s.url, Site: s.code, ClientID: "pc-renew"})
	if err != nil {
		t.Fatal(err)
	}
	before := c.Identity().Credential
	time.Sleep(2100 * time.Millisecond)
	if err := c.Report(ctx, true, msg(0, "KB1", 3)); err != nil {
		t.Fatalf("report after the credential expired: %v", err)
	}
	if c.Identity().Credential == before {
		t.Error("the credential was not renewed")
	}
}

func (s *trustSite) sqlAdmin(t *testing.T, q string) (*schema.Result, int) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": q})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/v1/sql", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer admin-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res schema.Result
	_ = json.NewDecoder(resp.Body).Decode(&res)
	return &res, resp.StatusCode
}

func (s *testSite) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// With --tls.cert and --tls.key the site serves HTTPS, and the SDK reports over it.
// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as PEM files in dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cert tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600)
	parsed, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(parsed)
	return certFile, keyFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}, pool
}

func TestIngestServesHTTPS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, _, pool := selfSigned(t, t.TempDir())
	s := startTrustSite(t, func(c *runConfig) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("site URL %s is not https", s.url)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := context.Background()
	c, err := client.Enroll(ctx, client.Config{URL: s.url, Site: s.code, ClientID: "tls-pc", HTTPClient: hc})
	if err != nil {
		t.Fatalf("enrol over HTTPS: %v", err)
	}
	if err := c.Report(ctx, true, msg(0, "KB1", 3)); err != nil {
		t.Fatalf("report over HTTPS: %v", err)
	}
	// Plain HTTP to the HTTPS port is refused.
	if resp, err := http.Post("http://"+strings.TrimPrefix(s.url, "https://")+"/v1/reports", schema.MediaJSON, strings.NewReader("{}")); err == nil {
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP answered %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
}

// A serial accepted before with other content is refused and counted, never folded (DESIGN
// §4): ingest answers 409 from its memory of the client's last report, and the projector —
// for reports that reached Kafka another way (another ingest node, a restarted one) —
// dead-letters the whole report.
func TestReusedSerialWithOtherContentIsRefused(t *testing.T) {
	t.Parallel()
	s := startTrustSite(t, nil)
	ctx := context.Background()
	alice, err := client.Enroll(ctx, client.Config{URL: s.url, Site: s.code, ClientID: "alice", Name: "ALICE-PC"})
	if err != nil {
		t.Fatal(err)
	}
	id := alice.Identity()
	key := ed25519.PrivateKey(id.PrivateKey)
	now := time.Now().UnixMilli()
	base := id.SerialBase
	first := reportJSON("alice", s.code, base+100, now) // KB1 Required
	if st, _, eb := s.post(t, "/v1/reports", first, signed(id.Credential, key, first)); st != 200 {
		t.Fatalf("first report: %d %+v", st, eb)
	}
	// The same report again is a retry: accepted.
	if st, _, eb := s.post(t, "/v1/reports", first, signed(id.Credential, key, first)); st != 200 {
		t.Fatalf("exact duplicate: %d %+v, want 200", st, eb)
	}
	other := bytes.Replace(first, []byte(`"state":2`), []byte(`"state":3`), 1)
	st, _, eb := s.post(t, "/v1/reports", other, signed(id.Credential, key, other))
	if st != 409 || eb.Code != schema.CodeConflict || eb.Field != "messages[0].serial" {
		t.Fatalf("reused serial: %d %+v, want 409 conflict naming messages[0].serial", st, eb)
	}
	// The same rewrite, with a new message beside it, accepted by an ingest node that never
	// saw the first report (a record vouched for with the site key): the projector refuses the
	// whole report.
	var forged bytes.Buffer
	_ = schema.EncodeReport(&forged, &schema.Report{V: 1, Client: "alice", Site: s.code, Messages: []schema.StateMessage{
		{Serial: base + 100, Time: now, TopicType: schema.TopicUpdateCompliance, TopicID: "KB1", State: 3},
		{Serial: base + 101, Time: now, TopicType: schema.TopicUpdateCompliance, TopicID: "KB2", State: 3}}})
	s.produceVouched(t, "alice", forged.Bytes())
	eventually(t, func() string {
		m := s.metrics(t)
		if !strings.Contains(m, `statepipe_projector_dead_letters_total{reason="serial_conflict",site="`+s.code+`"} 1`) {
			return "the rewritten report was not dead-lettered"
		}
		if !strings.Contains(m, `statepipe_ingest_rejected_total{reason="serial_conflict",site="`+s.code+`"} 1`) {
			return "ingest did not count its 409"
		}
		return ""
	})
	// A later record folds, so the forged one is behind the projector: nothing of it counts.
	if err := alice.Report(ctx, false, msg(0, "KB3", 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		c := s.compliance("KB1", "KB3")
		got := map[string][2]int64{}
		for _, u := range c.Updates {
			got[u.UpdateID] = [2]int64{u.Required, u.Installed}
		}
		if got["KB3"] != [2]int64{0, 1} {
			return fmt.Sprintf("the later report is not folded yet: %v", got)
		}
		if got["KB1"] != [2]int64{1, 0} {
			return fmt.Sprintf("KB1 must stay Required: %v", got)
		}
		return ""
	})
	// KB2 came only in the dead-lettered report: the site does not know it.
	if st, ed := s.rpGet("/v1/reports/compliance?updates=KB2", nil); st != 404 || ed.Field != "updates" {
		t.Errorf("KB2 must be unknown to the site (404 naming updates): %d %+v", st, ed)
	}
	res, _ := s.sqlAdmin(t, fmt.Sprintf("SELECT state FROM %s.state_messages FINAL WHERE client = 'alice' AND serial IN (%d, %d) ORDER BY serial", database(s.code), base+100, base+101))
	if len(res.Rows) != 1 || res.Rows[0][0].(float64) != 2 {
		t.Errorf("the raw log must keep serial 100 as first accepted and nothing of the forged report: %v", res.Rows)
	}
}
