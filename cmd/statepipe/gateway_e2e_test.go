package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// cmDoc is one ConfigMgr document of client with one 500 message of update at serial.
func cmDoc(client string, serial int, update string, state int) []byte {
	return []byte(cmDocument(client, "Delta", []string{cmMsg(serial, 500, update, state, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339))}))
}

// relay posts a ConfigMgr body to the site with headers (a signature) and returns the status
// and the answer.
func (s *trustSite) relay(t *testing.T, body []byte, headers map[string]string) (int, schema.ConfigMgrAnswer) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/xml"}
	for k, v := range headers {
		h[k] = v
	}
	status, _, raw := postWith(t, s.url+"/v1/configmgr/reports", body, h)
	var a schema.ConfigMgrAnswer
	_ = json.Unmarshal(raw, &a)
	return status, a
}

// A gateway, end to end against a site that requires signatures: only an administrator
// enrols one; it relays for the site's clients and nothing else; a client's credential
// cannot relay and a gateway's cannot report; a natively enrolled machine outranks whatever
// is relayed in its name; and once a stolen gateway key is revoked and the gateway enrolled
// again, the new relays outrank everything the stolen key sent.
func TestGatewayRelaysOnlyWhatItMay(t *testing.T) {
	t.Parallel()
	s := startTrustSite(t, nil)
	ctx := context.Background()
	gwKey := genKey(t)
	gwBody := func(id string, key ed25519.PrivateKey, grant string) []byte {
		b, _ := json.Marshal(schema.EnrollRequest{Client: id, Site: s.code, Kind: schema.KindGateway, PublicKey: key.Public().(ed25519.PublicKey), Grant: grant})
		return b
	}
	admin := map[string]string{"Authorization": "Bearer admin-secret"}
	waitEnrolable(t, s.url, s.code)

	// Only the administrator enrols a gateway.
	if st, _, e := postEnroll(t, s.url, gwBody("gw", gwKey, ""), nil); st != 401 || e.Field != "Authorization" {
		t.Fatalf("gateway without the admin token: %d %+v, want 401 naming Authorization", st, e)
	}
	st, er, e := postEnroll(t, s.url, gwBody("gw", gwKey, ""), admin)
	if st != 200 {
		t.Fatalf("gateway enrolment: %d %+v", st, e)
	}
	// Its renewal (its own key) needs no token; its id is a gateway's for good.
	if st, _, e := postEnroll(t, s.url, gwBody("gw", gwKey, ""), nil); st != 200 {
		t.Errorf("gateway renewal: %d %+v", st, e)
	}
	if st, _, e := enrollRaw(t, s.url, s.code, "gw", genKey(t), nil); st != 409 || e.Field != "kind" {
		t.Errorf("a client enrolling with the gateway's id: %d %+v, want 409 naming kind", st, e)
	}
	native, err := client.Enroll(ctx, client.Config{URL: s.url, Site: s.code, ClientID: "GUID:native"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _, e := postEnroll(t, s.url, gwBody("GUID:native", genKey(t), ""), admin); st != 409 || e.Field != "kind" {
		t.Errorf("a gateway enrolling with a client's id: %d %+v, want 409 naming kind", st, e)
	}

	gw := func(body []byte) map[string]string { return signed(er.Credential, gwKey, body) }
	// A gateway's credential cannot report for itself, a client's cannot relay, nor can nobody.
	rep := reportJSON("gw", s.code, schema.SerialBase(1)+1, time.Now().UnixMilli())
	if st, _, e := s.post(t, "/v1/reports", rep, gw(rep)); st != 403 || e.Field != schema.HeaderCredential {
		t.Errorf("a gateway on /v1/reports: %d %+v, want 403", st, e)
	}
	doc := cmDoc("GUID:cm-1", 7, "U1", 2)
	id := native.Identity()
	if st, a := s.relay(t, doc, signed(id.Credential, ed25519.PrivateKey(id.PrivateKey), doc)); st != 403 || a.Error == nil || a.Error.Field != schema.HeaderCredential {
		t.Errorf("a client's credential relaying: %d %+v, want 403", st, a)
	}
	if st, a := s.relay(t, doc, nil); st != 401 || a.Error == nil {
		t.Errorf("an unsigned relay where signatures are required: %d %+v, want 401", st, a)
	}
	if st, a := s.relay(t, doc, signed(er.Credential, gwKey, append([]byte(" "), doc...))); st != 401 || a.Error == nil || a.Error.Field != schema.HeaderSignature {
		t.Errorf("a relay whose signature is of another body: %d %+v, want 401", st, a)
	}
	// It relays for the site's clients, per document; not for a gateway.
	batch := []byte("<Reports>" + strip(string(cmDoc("GUID:cm-1", 7, "U1", 2))) + strip(string(cmDoc("gw", 8, "U1", 2))) + "</Reports>")
	st, a := s.relay(t, batch, gw(batch))
	if st != 207 || a.Accepted != 1 || a.Refused != 1 || a.Documents[0].Status != 200 || a.Documents[0].Messages != 1 ||
		a.Documents[1].Status != 403 || a.Documents[1].Error.Field != "ReportHeader/Identification/Machine/ClientID" {
		t.Fatalf("a batch for a client and for a gateway: %d %+v, want 207 with the second refused 403 naming its ClientID", st, a)
	}
	// The same document again is a duplicate, accepted.
	if st, a := s.relay(t, doc, gw(doc)); st != 200 || a.Documents[0].Messages != 1 {
		t.Errorf("the same document again: %d %+v", st, a)
	}
	// The native machine reports Installed at its first serial; the gateway relays Required
	// for it at ConfigMgr's highest serial: the native state stays.
	if err := native.Report(ctx, true, schema.StateMessage{TopicType: 500, TopicID: "U2", State: 3}); err != nil {
		t.Fatal(err)
	}
	high := cmDoc("GUID:native", 1<<40-1, "U2", 2)
	if st, a := s.relay(t, high, gw(high)); st != 200 {
		t.Fatalf("relay for a native client: %d %+v", st, a)
	}
	// A second gateway relays for the same clients: ConfigMgr's serials order relays of both
	// (gw relays cm-2's serial 100, gw2 its serial 101: 101's state stands).
	gw2Key := genKey(t)
	st, er3, e := postEnroll(t, s.url, gwBody("gw2", gw2Key, ""), admin)
	if st != 200 {
		t.Fatalf("a second gateway: %d %+v", st, e)
	}
	gw2 := func(body []byte) map[string]string { return signed(er3.Credential, gw2Key, body) }
	for _, r := range []struct {
		headers func([]byte) map[string]string
		serial  int
		state   int
	}{{gw2, 101, 3}, {gw, 100, 2}} { // the later serial first: arrival order does not matter
		d := cmDoc("GUID:cm-2", r.serial, "U1", r.state)
		if st, a := s.relay(t, d, r.headers(d)); st != 200 {
			t.Fatalf("relay of cm-2's serial %d: %d %+v", r.serial, st, a)
		}
	}
	// The gateway's key is stolen. The thief relays Installed for cm-1 at the highest serial.
	for _, c := range []string{"GUID:cm-1", "GUID:cm-3"} {
		stolen := cmDoc(c, 1<<40-1, "U1", 3)
		if st, a := s.relay(t, stolen, gw(stolen)); st != 200 {
			t.Fatalf("the stolen key's relay: %d %+v", st, a)
		}
	}
	// Revoked, the key relays nothing; the gateway enrols again (grant and admin token) and
	// relays ConfigMgr's next real serial for cm-1: Required, which wins.
	grant := revoke(t, s.url, "gw", "admin-secret")
	eventually(t, func() string {
		if st, a := s.relay(t, doc, gw(doc)); st != 401 {
			return fmt.Sprintf("the revoked gateway: %d %+v, want 401", st, a)
		}
		return ""
	})
	newKey := genKey(t)
	st, er2, e := postEnroll(t, s.url, gwBody("gw", newKey, grant), admin)
	if st != 200 || er2.SerialBase != schema.SerialBase(2) {
		t.Fatalf("the gateway enrolling again: %d %+v %+v", st, er2, e)
	}
	next := cmDoc("GUID:cm-1", 9, "U1", 2)
	if st, a := s.relay(t, next, signed(er2.Credential, newKey, next)); st != 200 {
		t.Fatalf("the new gateway's relay: %d %+v", st, a)
	}
	// The thief's states lose to the other gateway's relays too, now.
	other := cmDoc("GUID:cm-3", 9, "U1", 2)
	if st, a := s.relay(t, other, gw2(other)); st != 200 {
		t.Fatalf("the other gateway's relay after the revocation: %d %+v", st, a)
	}
	catalog := []byte(`{"id":"U1","title":"one","first_synced":"2024-01-01T00:00:00Z"}` + "\n" + `{"id":"U2","title":"two","first_synced":"2024-01-01T00:00:00Z"}`)
	if st, _, raw := postWith(t, s.url+"/v1/ref/catalog", catalog, admin); st != 200 {
		t.Fatalf("catalog: %d %s", st, raw)
	}
	eventually(t, func() string {
		for _, want := range []struct {
			client, update string
			state          int
		}{{"GUID:cm-1", "U1", schema.ComplianceRequired}, {"GUID:native", "U2", schema.ComplianceInstalled},
			{"GUID:cm-2", "U1", schema.ComplianceInstalled}, {"GUID:cm-3", "U1", schema.ComplianceRequired}} {
			var c report.Computer
			if code := s.get("/v1/reports/computer?client="+want.client+"&updates="+want.update, &c); code != 200 || len(c.Updates) != 1 {
				return fmt.Sprintf("computer report of %s: %d %+v", want.client, code, c)
			}
			if c.Updates[0].State != want.state {
				return fmt.Sprintf("%s %s: %d, want %d", want.client, want.update, c.Updates[0].State, want.state)
			}
		}
		return ""
	})
}

// Where the site has no admin token but an enrolment token, a gateway enrols as a client does:
// with the enrolment token, and counted by the enrolment rate.
func TestGatewayNeedsAtLeastTheEnrolmentToken(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{tune: func(c *runConfig) { c.Auth.EnrollToken = "enrol-secret" }})
	body, _ := json.Marshal(schema.EnrollRequest{Client: "gw", Site: s.code, Kind: schema.KindGateway, PublicKey: genKey(t).Public().(ed25519.PublicKey)})
	eventually(t, func() string {
		if st, _, e := postEnroll(t, s.url, body, map[string]string{"Authorization": "Bearer enrol-secret"}); st != 200 {
			return fmt.Sprintf("a gateway with the enrolment token: %d %+v", st, e)
		}
		return ""
	})
	other, _ := json.Marshal(schema.EnrollRequest{Client: "gw-2", Site: s.code, Kind: schema.KindGateway, PublicKey: genKey(t).Public().(ed25519.PublicKey)})
	if st, _, e := postEnroll(t, s.url, other, nil); st != 401 || e.Field != "Authorization" {
		t.Errorf("a gateway without any token: %d %+v, want 401 naming Authorization", st, e)
	}
}
