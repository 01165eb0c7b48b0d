package main

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/schema"
)

func newKey() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(crand.Reader)
	return k
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// revoke asks the site to revoke client (admin token).
func (r *Run) revoke(ctx context.Context, id string) Resp {
	b, _ := json.Marshal(map[string]string{"client": id})
	return do(ctx, r.hc, "POST", r.site.URL()+"/v1/revoke", bodyOf(b), map[string]string{
		"Authorization": "Bearer " + r.site.AdminToken, "Content-Type": "application/json"})
}

// rotationBody is a rotation request for client to key next, signed by cur with its credential.
func rotationRequest(id string, next ed25519.PublicKey, curKey ed25519.PrivateKey, curCred string) ([]byte, map[string]string) {
	body, _ := json.Marshal(schema.EnrollRequest{Client: id, Site: site, PublicKey: next, Time: time.Now().UnixMilli()})
	return body, map[string]string{schema.HeaderCredential: curCred, schema.HeaderSignature: schema.SignBody(curKey, body)}
}

// attacksIdentity: the identity races (A8; claims during a restart are in killAndRestart).
func (r *Run) attacksIdentity() {
	stamp := strconv.FormatInt(time.Now().Unix()%100000, 10)

	r.attempt("A8a", "identity race: 16 concurrent enrolments of one new id",
		"5 rounds: 16 POST /v1/enroll of one new client id, each with its own key, released at once; then the winner reports, and every loser tries again",
		"80 + 80 requests, 60 s", "exactly one 200 per id, the others 409 naming client; only the winner's key reports", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			for round := range 5 {
				id := fmt.Sprintf("hostile-race-%s-%d", stamp, round)
				keys := make([]ed25519.PrivateKey, 16)
				for i := range keys {
					keys[i] = newKey()
				}
				var wg sync.WaitGroup
				start := make(chan struct{})
				results := make([]Resp, 16)
				for i := range keys {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						c, cancel := context.WithTimeout(ctx, 20*time.Second)
						defer cancel()
						results[i] = r.enrollRaw(c, enrollBody(id, pubOf(keys[i])), nil)
					}()
				}
				close(start)
				wg.Wait()
				winners := 0
				var winner *Agent
				for i, res := range results {
					a.answer(res)
					if res.Status == 200 {
						winners++
						var er schema.EnrollResponse
						_ = json.Unmarshal(res.Body, &er)
						winner = &Agent{r: r, ID: id, Key: keys[i], Cred: er.Credential, Base: er.SerialBase, serial: er.SerialBase}
					} else if res.Status != 409 || res.Field != "client" {
						a.fail("round %d: a competing enrolment answered %s (want 409 field=client)", round, res.Key())
					}
				}
				if winners != 1 {
					a.fail("round %d: %d of 16 concurrent enrolments of %s won (want exactly 1)", round, winners, id)
					continue
				}
				c, cancel := context.WithTimeout(ctx, 10*time.Second)
				a.judge(fmt.Sprintf("round %d: the winner reports", round), winner.report(c, nil, winner.msg("KB-HOSTILE-RACE", 2)), "", 200)
				cancel()
				again := 0
				for i, res := range results {
					if res.Status == 200 {
						continue
					}
					c, cancel := context.WithTimeout(ctx, 10*time.Second)
					res2 := r.enrollRaw(c, enrollBody(id, pubOf(keys[i])), nil)
					cancel()
					a.answer(res2)
					if res2.Status == 200 {
						again++
					}
				}
				if again > 0 {
					a.fail("round %d: %d losing keys won when they tried again", round, again)
				}
			}
		})

	r.attempt("A8c", "identity: a revoked key reports and enrols again",
		"enrol hostile-revk, report, POST /v1/revoke; then the revoked credential reports, the revoked key enrols again, a new key enrols and reports",
		"7 requests, 30 s", "revoked credential 401 (Statepipe-Credential); revoked key 403 (public_key); the new key 200", bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			id := "hostile-revk-" + stamp
			ag, res := r.newAgent(ctx, id, nil)
			if !a.judge("enrol", res, "", 200) {
				return
			}
			a.judge("report before the revocation", ag.report(ctx, nil, ag.msg("KB-HOSTILE-REVK", 2)), "", 200)
			rv := r.revoke(ctx, id)
			a.judge("revoke (admin)", rv, "", 200)
			grant := grantOf(rv)
			time.Sleep(300 * time.Millisecond)
			a.judge("the revoked credential reports", ag.report(ctx, nil, ag.msg("KB-HOSTILE-REVK", 3)), schema.HeaderCredential, 401)
			r.witnesses = append(r.witnesses, ag)
			a.judge("the revoked key enrols again", r.enrollRaw(ctx, enrollBodyGrant(id, pubOf(ag.Key), grant), nil), "public_key", 403)
			body, hdr := rotationRequest(id, pubOf(newKey()), ag.Key, ag.Cred)
			a.judge("the revoked key signs a rotation", r.enrollRaw(ctx, body, hdr), "", 401, 403)
			if grant != "" {
				a.note("the revocation answered a one-time grant")
				a.judge("a thief's new key enrols the revoked id without the grant", r.enrollRaw(ctx, enrollBody(id, pubOf(newKey())), nil), "grant", 403)
				a.judge("a thief's new key enrols the revoked id with a made-up grant", r.enrollRaw(ctx, enrollBodyGrant(id, pubOf(newKey()), strings.Repeat("0", len(grant))), nil), "", 403, 409)
			}
			ag2, res := r.newAgentGrant(ctx, id, nil, grant)
			if a.judge("a new key enrols the freed id (with the grant, when one was answered)", res, "", 200) {
				a.judge("the new key reports", ag2.report(ctx, []schema.TopicType{schema.TopicUpdateCompliance}, ag2.msg("KB-HOSTILE-REVK", 1)), "", 200)
			}
			if grant != "" {
				a.judge("the grant used a second time, by another key", r.enrollRaw(ctx, enrollBodyGrant(id, pubOf(newKey()), grant), nil), "", 403, 409)
			}
		})

	r.attempt("A8d", "identity: the old key reports after a rotation",
		"enrol hostile-rot through the SDK, report, SDK Rotate(); then the old credential reports, the old key enrols again and signs a second rotation; the new key reports. The same with `statepipe client enroll` and `statepipe client rotate` (CLI)",
		"~12 requests, 60 s", "old credential 401; old key 403 (enrol) and 401 (rotation); new key 200", bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			id := "hostile-rot-" + stamp
			c, err := client.Enroll(ctx, client.Config{URL: r.site.URL(), Site: site, ClientID: id, HTTPClient: r.hc, MaxAttempts: 5})
			if err != nil {
				a.fail("SDK enrol: %v", err)
				return
			}
			old := *c.Identity()
			sendSDK := func(name string, state int32) {
				base := c.Identity().SerialBase
				rep := &schema.Report{V: 1, Client: id, Site: site, FullTypes: []schema.TopicType{schema.TopicUpdateCompliance}, Messages: []schema.StateMessage{
					{Serial: max(base, c.LastSerial()) + 1, Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: "KB-HOSTILE-ROT", State: state}}}
				_, err := c.Send(ctx, rep)
				if err != nil {
					a.count("SDK error")
					a.fail("%s: %v", name, err)
					return
				}
				a.count("200 (SDK)")
				r.oracle.Apply(rep)
			}
			sendSDK("report before the rotation", 2)
			if err := rotate(ctx, c); err != nil {
				a.fail("SDK Rotate: %v", err)
				return
			}
			a.count("200 (SDK Rotate)")
			oldAg := &Agent{r: r, ID: id, Key: old.PrivateKey, Cred: old.Credential, Base: old.SerialBase, serial: old.SerialBase + 10}
			a.judge("the old credential reports", oldAg.report(ctx, nil, oldAg.msg("KB-HOSTILE-ROT", 3)), schema.HeaderCredential, 401)
			r.witnesses = append(r.witnesses, oldAg)
			a.judge("the old key enrols again", r.enrollRaw(ctx, enrollBody(id, pubOf(old.PrivateKey)), nil), "public_key", 403)
			body, hdr := rotationRequest(id, pubOf(newKey()), old.PrivateKey, old.Credential)
			a.judge("the old key signs another rotation", r.enrollRaw(ctx, body, hdr), "", 401, 403)
			cur := c.Identity()
			body, hdr = rotationRequest(id, pubOf(newKey()), cur.PrivateKey, cur.Credential)
			hdr[schema.HeaderSignature] = schema.SignBody(newKey(), body)
			a.judge("a rotation with the current credential, signed by another key", r.enrollRaw(ctx, body, hdr), schema.HeaderSignature, 401)
			sendSDK("the new key reports", 1)
			// The CLI.
			dir := filepath.Join(os.TempDir(), "hostile-ids-"+stamp)
			_ = os.MkdirAll(dir, 0o700)
			file := filepath.Join(dir, "cli.identity")
			cliID := "hostile-rotcli-" + stamp
			run := func(args ...string) error {
				cmd := exec.CommandContext(ctx, r.site.Bin, args...)
				out, err := cmd.CombinedOutput()
				if err != nil {
					return fmt.Errorf("%v: %s", err, clipped(string(out), 300))
				}
				return nil
			}
			if err := run("client", "enroll", "--url", r.site.URL(), "--site", site, "--id", cliID, "--out", file); err != nil {
				a.fail("statepipe client enroll: %v", err)
				return
			}
			before, err := client.LoadIdentity(file)
			if err != nil {
				a.fail("identity file: %v", err)
				return
			}
			if err := run("client", "rotate", "--url", r.site.URL(), "--identity", file); err != nil {
				a.fail("statepipe client rotate: %v", err)
				return
			}
			a.count("0 (statepipe client enroll, rotate)")
			after, _ := client.LoadIdentity(file)
			oldCLI := &Agent{r: r, ID: cliID, Key: before.PrivateKey, Cred: before.Credential, serial: before.SerialBase}
			a.judge("CLI: the old credential reports", oldCLI.report(ctx, nil, oldCLI.msg("KB-HOSTILE-ROT", 3)), schema.HeaderCredential, 401)
			if after != nil {
				newCLI := &Agent{r: r, ID: cliID, Key: after.PrivateKey, Cred: after.Credential, serial: after.SerialBase}
				a.judge("CLI: the new key reports", newCLI.report(ctx, nil, newCLI.msg("KB-HOSTILE-ROT", 1)), "", 200)
			}
		})

	r.attempt("A8f", "identity: a serial reused for another update",
		"hostile-reuse reports serial s for KB-R1 (200), then serial s for KB-R2, then s for KB-R1 with another state, then the first report again (a retry)",
		"4 requests, 30 s", "409 conflict naming messages[0].serial twice; the exact retry 200 (folded once)", bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			ag, res := r.newAgent(ctx, "hostile-reuse-"+stamp, nil)
			if !a.judge("enrol", res, "", 200) {
				return
			}
			m := ag.msg("KB-HOSTILE-R1", 2)
			first := &schema.Report{V: 1, Client: ag.ID, Site: site, Messages: []schema.StateMessage{m}}
			a.judge("serial s for KB-R1", ag.send(ctx, first), "", 200)
			m2 := m
			m2.TopicID = "KB-HOSTILE-R2"
			a.judge("serial s again for KB-R2", ag.send(ctx, &schema.Report{V: 1, Client: ag.ID, Site: site, Messages: []schema.StateMessage{m2}}), "messages[0].serial", 409)
			m3 := m
			m3.State = 3
			a.judge("serial s again for KB-R1, another state", ag.send(ctx, &schema.Report{V: 1, Client: ag.ID, Site: site, Messages: []schema.StateMessage{m3}}), "messages[0].serial", 409)
			a.judge("the first report again (a retry)", ag.send(ctx, first), "", 200)
		})

	r.attempt("A8g", "identity: a stolen key sends serial 2^64−2, then the machine enrols again and wins",
		"machine hostile-stolen enrols and reports KB-STOLEN = 2; the thief (same key) sends serial 2^64−2 = 3, then the greatest serial of the enrolment's range = 3; revoke; the machine enrols a new key and reports 2; the thief reports and enrols again",
		"~9 requests, 30 s", "2^64−2: 400 naming messages[0].serial; in-range: 200 (a stolen key is the key, until revoked); after revocation the thief 401/403 and the machine's new state is live",
		bounded(30*time.Second),
		func(ctx context.Context, a *Attempt) {
			id := "hostile-stolen-" + stamp
			machine, res := r.newAgent(ctx, id, nil)
			if !a.judge("machine enrols", res, "", 200) {
				return
			}
			a.judge("machine reports", machine.report(ctx, []schema.TopicType{schema.TopicUpdateCompliance}, machine.msg("KB-STOLEN", 2)), "", 200)
			thief := &Agent{r: r, ID: id, Key: machine.Key, Cred: machine.Cred}
			big := schema.StateMessage{Serial: math.MaxUint64 - 1, Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: "KB-STOLEN", State: 3}
			a.judge("thief: serial 2^64−2", thief.report(ctx, nil, big), "messages[0].serial", 400)
			top := big
			top.Serial = machine.Base + schema.SerialSpan - 1
			if res := thief.report(ctx, nil, top); a.judge("thief: the greatest serial of the range", res, "", 200) {
				a.note("a stolen key reports within its enrolment's serial range until it is revoked (known limit): serial %d accepted", top.Serial)
			}
			rv := r.revoke(ctx, id)
			a.judge("revoke the stolen id (admin)", rv, "", 200)
			grant := grantOf(rv)
			time.Sleep(300 * time.Millisecond)
			if grant != "" {
				a.judge("the thief races for the freed id with a new key of its own", r.enrollRaw(ctx, enrollBody(id, pubOf(newKey())), nil), "grant", 403)
			}
			machine2, res := r.newAgentGrant(ctx, id, nil, grant)
			if !a.judge("machine enrols a new key", res, "", 200) {
				return
			}
			a.judge("machine reports with the new key", machine2.report(ctx, nil, machine2.msg("KB-STOLEN", 2)), "", 200)
			a.judge("thief reports after the revocation", thief.report(ctx, nil, schema.StateMessage{Serial: top.Serial - 1, Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: "KB-STOLEN", State: 3}), schema.HeaderCredential, 401)
			a.judge("thief enrols the stolen key again", r.enrollRaw(ctx, enrollBody(id, pubOf(machine.Key)), nil), "public_key", 403)
			deadline := time.Now().Add(15 * time.Second)
			var live string
			for time.Now().Before(deadline) {
				res, err := r.sql(ctx, r.site.AdminToken, fmt.Sprintf("SELECT toString(state) FROM statepipe_p01.v_live_state WHERE client = '%s' AND topic_type = 500 AND topic_id = 'KB-STOLEN'", id))
				if err == nil && len(res.Rows) == 1 {
					live = fmt.Sprint(res.Rows[0][0])
					if live == "2" {
						break
					}
				}
				time.Sleep(300 * time.Millisecond)
			}
			if live != "2" {
				a.fail("the machine's state after enrolling again is not live: KB-STOLEN = %q (want 2)", live)
			} else {
				a.note("the machine's state (2) is live after it enrolled again")
			}
		})

	r.attempt("A8e", "identity: enrolment flood of fake ids from one address",
		"POST /v1/enroll of new ids hostile-flood-N, each with a new key, 32 at once from 127.0.0.1; meanwhile a renewal of an enrolled key",
		"3,000 requests or 40 s", "200 up to the site's enrolment burst and rate, then 429 with Retry-After naming enroll; renewals not paced; legitimate reports unaffected", bounded(40*time.Second),
		func(ctx context.Context, a *Attempt) {
			var n atomic.Int64
			var noRetryAfter, paced atomic.Int64
			var wg sync.WaitGroup
			for w := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						i := n.Add(1)
						if i > 3000 {
							return
						}
						c, cancel := context.WithTimeout(ctx, 10*time.Second)
						res := r.enrollRaw(c, enrollBody(fmt.Sprintf("hostile-flood-%s-%05d", stamp, i), pubOf(newKey())), nil)
						cancel()
						if ctx.Err() != nil && res.Err != nil {
							return
						}
						a.answer(res)
						if res.Status == 429 {
							paced.Add(1)
							if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
								noRetryAfter.Add(1)
							}
						} else if res.Status != 200 {
							if res.Err != nil || res.Status >= 500 {
								a.fail("worker %d: %s %s", w, res.Key(), clipped(res.Message, 100))
							}
						}
					}
				}()
			}
			time.Sleep(3 * time.Second)
			rc, cancel := context.WithTimeout(ctx, 10*time.Second)
			a.judge("a renewal (an enrolled key enrols again) during the flood", r.enrollRaw(rc, enrollBody(r.after.ID, pubOf(r.after.Key)), nil), "", 200)
			cancel()
			wg.Wait()
			if paced.Load() == 0 {
				a.note("no 429: the flood did not reach the site's enrolment rate in its bound (see answers)")
			}
			if noRetryAfter.Load() > 0 {
				a.fail("%d answers 429 without a Retry-After of at least 1 s", noRetryAfter.Load())
			}
		})
}

// rotate calls the SDK's Rotate; the identity it would persist is kept in memory only.
func rotate(ctx context.Context, c *client.Client) error {
	return c.Rotate(ctx, func(*client.Identity) error { return nil })
}
