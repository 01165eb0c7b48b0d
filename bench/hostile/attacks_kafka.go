package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// broker helpers: the embedded broker at --kafka.listen, reached as any process on the host
// could, through statepipe's own Kafka package (acks=all, murmur2 by key).

// kafkaConfig is the connection to the site's embedded broker.
func (r *Run) kafkaConfig() kafka.Config {
	c := kafka.DefaultConfig()
	c.Brokers = []string{r.site.KafkaListen}
	c.BatchTimeout = 5 * time.Millisecond
	return c
}

// producer returns a producer for topic on the embedded broker.
func (r *Run) producer(topic string) *kafka.Producer {
	return kafka.NewProducer(r.kafkaConfig(), topic)
}

// findRecord reads the partition key hashes to, from its start, for the first record with
// that key that satisfies match.
func (r *Run) findRecord(ctx context.Context, topic, key string, match func(kafka.Record) bool) (kafka.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := r.kafkaConfig()
	parts, err := kafka.Partitions(ctx, c, topic)
	if err != nil {
		return kafka.Record{}, err
	}
	p := kafka.PartitionOf([]byte(key), len(parts))
	var found *kafka.Record
	err = kafka.ReadPartition(ctx, c, topic, p, func(m kafka.Record) error {
		if string(m.Key) == key && match(m) {
			found = &m
			return kafka.ErrStop
		}
		return nil
	})
	if err == nil && found == nil {
		err = errors.New("not found")
	}
	if err != nil {
		return kafka.Record{}, fmt.Errorf("no record of key %s in %s/%d: %w", key, topic, p, err)
	}
	return *found, nil
}

// attacksBehindIngest: records produced straight into the broker (A9).
func (r *Run) attacksBehindIngest() {
	var vic, rev, re *Agent
	r.attempt("A9a", "records behind ingest's back: state, ref and resync topics",
		"straight into the embedded broker with kafka-go: (1) an unsigned report of legit-001 (serial far above its own, KB5000001 = 3) without a vouch, (2) the same with a forged statepipe-vouch header, (3) a vouched record of legit-001 copied to key legit-002 with its value rewritten to legit-002 (vouch kept), (4) the vouched record again, verbatim (a duplicate); a forged catalog entry and a tombstone on ref.P01; a forged resync request on resync.P01",
		"7 records, 60 s", "(1)–(3) and the forged catalog entry dead-lettered unvouched (+4), never folded; (4) a duplicate, folded once (no change: the oracle); the ref tombstone ignored; the forged resync request is a documented limit (SECURITY.md), noted",
		bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			dl0, _ := r.metric(ctx, "statepipe_projector_dead_letters_total", map[string]string{"reason": "unvouched"})
			var victim *legitClient
			for _, lc := range r.fleet.clients {
				if lc.id == "legit-001" {
					victim = lc
				}
			}
			if victim == nil {
				a.fail("legit-001 not in the fleet")
				return
			}
			forgedSerial := victim.c.Identity().SerialBase + 1_000_000_000_000
			forged := &schema.Report{V: 1, Client: "legit-001", Site: site, Messages: []schema.StateMessage{
				{Serial: forgedSerial, Time: time.Now().UnixMilli(), TopicType: schema.TopicUpdateCompliance, TopicID: legitUpdate(0), State: 3}}}
			var buf bytes.Buffer
			_ = schema.EncodeReport(&buf, forged)
			w := r.producer("state." + site)
			defer w.Close()
			produceTo := func(w *kafka.Producer, name string, m kafka.Record) {
				err := w.Produce(ctx, m)
				if err != nil {
					a.count("produce error")
					a.fail("%s: cannot produce: %v", name, err)
					return
				}
				a.count("produced")
				a.Probes = append(a.Probes, Probe{Name: name + " → " + w.Topic(), Want: "produced", Got: "produced", OK: true})
			}
			produce := func(name string, m kafka.Record) { produceTo(w, name, m) }
			produce("(1) unvouched report of legit-001", kafka.Record{Key: []byte("legit-001"), Value: buf.Bytes(), Headers: []kafka.Header{{Key: "v", Value: []byte("1")}}})
			produce("(2) forged statepipe-vouch", kafka.Record{Key: []byte("legit-001"), Value: buf.Bytes(), Headers: []kafka.Header{{Key: "v", Value: []byte("1")},
				{Key: schema.HeaderVouch, Value: []byte(b64(bytes.Repeat([]byte{7}, 64)))}}})
			orig, err := r.findRecord(ctx, "state."+site, "legit-001", func(m kafka.Record) bool { return hasHeader(m, schema.HeaderVouch) })
			if err != nil {
				a.fail("cannot read a vouched record: %v", err)
			} else {
				var rep schema.Report
				if err := schema.DecodeReport(orig.Value, &rep); err != nil {
					a.fail("cannot decode a vouched record: %v", err)
				} else {
					rep.Client = "legit-002"
					for i := range rep.Messages {
						rep.Messages[i].Serial = forgedSerial + uint64(i) + 7
					}
					var b2 bytes.Buffer
					_ = schema.EncodeReport(&b2, &rep)
					produce("(3) vouched record moved to legit-002", kafka.Record{Key: []byte("legit-002"), Value: b2.Bytes(), Headers: orig.Headers})
				}
				produce("(4) vouched record verbatim (duplicate)", kafka.Record{Key: orig.Key, Value: orig.Value, Headers: orig.Headers})
			}
			// Reference data and resync behind ingest's back.
			rw := r.producer("ref." + site)
			defer rw.Close()
			cat := []byte(`{"id":"KB-FORGED","title":"forged behind ingest","first_synced":"2020-01-01T00:00:00Z"}`)
			produceTo(rw, "forged catalog entry KB-FORGED on ref.P01", kafka.Record{Key: []byte("catalog/KB-FORGED"), Value: cat})
			produceTo(rw, "tombstone on ref.P01 (catalog/KB5000001)", kafka.Record{Key: []byte("catalog/" + legitUpdate(0)), Value: nil})
			sw := r.producer("resync." + site)
			defer sw.Close()
			produceTo(sw, "forged resync request for probe-after on resync.P01", kafka.Record{Key: []byte(r.after.ID), Value: []byte(`{"client":"` + r.after.ID + `","reason":"forged"}`)})

			deadline := time.Now().Add(20 * time.Second)
			var dl float64
			for time.Now().Before(deadline) {
				dl, _ = r.metric(ctx, "statepipe_projector_dead_letters_total", map[string]string{"reason": "unvouched"})
				if dl-dl0 >= 4 && time.Since(deadline.Add(-20*time.Second)) > 5*time.Second {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			a.note("statepipe_projector_dead_letters_total{reason=\"unvouched\"} %.0f → %.0f", dl0, dl)
			if out, err := exec.CommandContext(ctx, r.site.Bin, "dlq", "list", "--site", site, "--kafka.brokers", r.site.KafkaListen, "--json").Output(); err != nil {
				a.note("statepipe dlq list: %v", err)
			} else {
				var list []string
				for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
					var d struct {
						Client, Reason, Source string
					}
					if json.Unmarshal([]byte(line), &d) == nil && d.Reason != "" {
						list = append(list, fmt.Sprintf("%s %s (%s)", d.Source, d.Client, d.Reason))
					}
				}
				a.note("statepipe dlq list: %s", strings.Join(list, ", "))
			}
			if dl-dl0 < 4 {
				a.fail("unvouched dead letters rose by %.0f (want 4: the state records (1)–(3) and the forged catalog entry)", dl-dl0)
			}
			res, err := r.sql(ctx, r.site.AdminToken, fmt.Sprintf("SELECT count() FROM statepipe_p01.state_messages WHERE client IN ('legit-001', 'legit-002') AND serial >= %d", forgedSerial))
			if err != nil {
				a.fail("%v", err)
			} else if n, _ := toInt(res.Rows[0][0]); n != 0 {
				a.fail("forged state records were folded: %d rows of legit-001/002 at or above serial %d", n, forgedSerial)
			}
			res, err = r.sql(ctx, r.site.AdminToken, "SELECT count() FROM statepipe_p01.v_updates WHERE id = 'KB-FORGED'")
			if err != nil {
				a.fail("%v", err)
			} else if n, _ := toInt(res.Rows[0][0]); n != 0 {
				a.fail("the forged catalog entry KB-FORGED was imported")
			}
			// What the forged resync request did: the next ack of probe-after.
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			ack := r.after.report(c, nil, r.after.msg("KB-AFTER", 3))
			cancel()
			var ak schema.Ack
			_ = json.Unmarshal(ack.Body, &ak)
			if ak.Resync {
				a.note("observation: the forged, unvouched resync request took effect: probe-after's next answer asked it for a full report (resync.P01 records are not vouched; effect: a full report, not a state change)")
			} else {
				a.note("the forged resync request had no effect on probe-after's next answer")
			}
		})

	r.attempt("A9b", "records behind ingest's back: identity log",
		"on identity.P01: a tombstone for revoked hostile-idrev; a forged enroll of a fresh id with an attacker key; a forged revoke and a forged rotate (to an attacker key) of enrolled hostile-idvic; and a replay, verbatim, of the genuine vouched revoke event of hostile-idre, which has since enrolled a new key",
		"5 records + ~8 checks, 60 s", "every forged record ignored (statepipe_ingest_identity_records_ignored_total +4); revoked stays revoked; the victim keeps its id; the replay takes no effect",
		bounded(60*time.Second),
		func(ctx context.Context, a *Attempt) {
			stamp := strconv.FormatInt(time.Now().Unix()%100000, 10)
			var res Resp
			if vic, res = r.newAgent(ctx, "hostile-idvic-"+stamp, nil); !a.judge("enrol the victim", res, "", 200) {
				return
			}
			if rev, res = r.newAgent(ctx, "hostile-idrev-"+stamp, nil); !a.judge("enrol hostile-idrev", res, "", 200) {
				return
			}
			a.judge("revoke hostile-idrev", r.revoke(ctx, rev.ID), "", 200)
			var re1 *Agent
			if re1, res = r.newAgent(ctx, "hostile-idre-"+stamp, nil); !a.judge("enrol hostile-idre", res, "", 200) {
				return
			}
			rv := r.revoke(ctx, re1.ID)
			a.judge("revoke hostile-idre", rv, "", 200)
			if re, res = r.newAgentGrant(ctx, re1.ID, nil, grantOf(rv)); !a.judge("hostile-idre enrols a new key", res, "", 200) {
				return
			}
			ig0, _ := r.metric(ctx, "statepipe_ingest_identity_records_ignored_total", nil)
			w := r.producer("identity." + site)
			defer w.Close()
			produce := func(name string, m kafka.Record) {
				if err := w.Produce(ctx, m); err != nil {
					a.count("produce error")
					a.fail("%s: cannot produce: %v", name, err)
					return
				}
				a.count("produced")
				a.Probes = append(a.Probes, Probe{Name: name, Want: "produced", Got: "produced", OK: true})
			}
			ev := func(op string, key, from []byte) []byte {
				b, _ := json.Marshal(map[string]any{"op": op, "key": key, "from": from, "nonce": "forged-" + op, "at_ms": time.Now().UnixMilli()})
				return b
			}
			attacker := newKey()
			fresh := "hostile-idfresh-" + stamp
			produce("tombstone for revoked hostile-idrev", kafka.Record{Key: []byte(rev.ID), Value: nil})
			produce("forged enroll of a fresh id with the attacker's key", kafka.Record{Key: []byte(fresh), Value: ev("enroll", pubOf(attacker), nil)})
			produce("forged revoke of the victim", kafka.Record{Key: []byte(vic.ID), Value: ev("revoke", nil, nil)})
			produce("forged rotate of the victim to the attacker's key", kafka.Record{Key: []byte(vic.ID), Value: ev("rotate", pubOf(attacker), pubOf(vic.Key))})
			orig, err := r.findRecord(ctx, "identity."+site, re.ID, func(m kafka.Record) bool {
				return hasHeader(m, schema.HeaderVouch) && bytes.Contains(m.Value, []byte(`"op":"revoke"`))
			})
			if err != nil {
				a.fail("cannot read the genuine revoke event: %v", err)
			} else {
				produce("replay of the genuine vouched revoke of hostile-idre", kafka.Record{Key: orig.Key, Value: orig.Value, Headers: orig.Headers})
			}
			time.Sleep(2 * time.Second)
			ig, _ := r.metric(ctx, "statepipe_ingest_identity_records_ignored_total", nil)
			a.note("statepipe_ingest_identity_records_ignored_total %.0f → %.0f", ig0, ig)
			if ig-ig0 < 4 {
				a.fail("identity records ignored rose by %.0f (want 4: the forged ones)", ig-ig0)
			}
			r.identityChecks(ctx, a, vic, rev, re, fresh, attacker)
		})
	for _, w := range []*Agent{vic, rev, re} {
		if w != nil {
			r.witnesses = append(r.witnesses, w)
		}
	}
}

// witnessAnswers sends one report from every identity witness (credentials of enrolled,
// revoked, rotated-away keys) and returns each answer: a restart must not change them.
func (r *Run) witnessAnswers(ctx context.Context) []string {
	out := make([]string, len(r.witnesses))
	for i, w := range r.witnesses {
		var res Resp
		for range 20 { // the node may still be reading its identity log: 503, retry
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			res = w.report(c, nil, w.msg("KB-HOSTILE-WITNESS", 2))
			cancel()
			if res.Status != 503 && res.Err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		out[i] = w.ID + ": " + res.Key()
	}
	return out
}

// identityChecks: what must hold of the identity victims (A9b, and again after the restart).
func (r *Run) identityChecks(ctx context.Context, a *Attempt, vic, rev, re *Agent, fresh string, attacker []byte) {
	a.judge("the victim still reports", vic.report(ctx, nil, vic.msg("KB-HOSTILE-VIC", 2)), "", 200)
	a.judge("an attacker's key cannot take the victim's id", r.enrollRaw(ctx, enrollBody(vic.ID, pubOf(attacker)), nil), "client", 409)
	a.judge("the revoked hostile-idrev credential stays refused", rev.report(ctx, nil, rev.msg("KB-HOSTILE-REV", 2)), schema.HeaderCredential, 401)
	a.judge("the revoked hostile-idrev key stays retired", r.enrollRaw(ctx, enrollBody(rev.ID, pubOf(rev.Key)), nil), "public_key", 403)
	a.judge("hostile-idre's new key still reports (the replayed revoke took no effect)", re.report(ctx, nil, re.msg("KB-HOSTILE-RE", 2)), "", 200)
	a.judge("an attacker's key cannot take hostile-idre's id", r.enrollRaw(ctx, enrollBody(re.ID, pubOf(newKey())), nil), "client", 409)
	if fresh != "" {
		a.judge("another key enrols the fresh id (the forged enroll was ignored)", r.enrollRaw(ctx, enrollBody(fresh, pubOf(newKey())), nil), "", 200)
	}
}

// killAndRestart: kill -9 in the middle of the run, restart on the same data directory while
// the fleet keeps sending (the SDK retries), competing claims of an enrolled id during the
// restart (A8b), then the oracle.
func (r *Run) killAndRestart() {
	r.attempt("K1", "kill -9 of the site mid-run, restart on the same data directory; claims of an enrolled id during the restart (A8b)",
		"SIGKILL while 32 machines report; `statepipe run` again with the same flags and --data; meanwhile 4 workers claim legit-000 (enrolled) with new keys in a loop, from the kill until 5 s after /healthz is 200",
		"one kill, restart within 180 s", "no claim wins (409 or 503, or refused connections); the machines' reports all acknowledged after the restart; the oracle equal; every identity witness (enrolled, revoked, rotated-away credentials) answered as before the kill",
		bounded(300*time.Second),
		func(ctx context.Context, a *Attempt) {
			rss := r.site.RSS()
			var stop atomic.Bool
			var wg sync.WaitGroup
			var won atomic.Int64
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for !stop.Load() && ctx.Err() == nil {
						c, cancel := context.WithTimeout(ctx, time.Second)
						res := r.enrollRaw(c, enrollBody("legit-000", pubOf(newKey())), nil)
						cancel()
						if res.Err != nil {
							a.count("claim: " + res.Key())
							time.Sleep(50 * time.Millisecond)
							continue
						}
						a.count("claim: " + res.Key())
						if res.Status == 200 {
							won.Add(1)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			before := r.witnessAnswers(ctx)
			time.Sleep(time.Second)
			r.down.Store(true)
			killed := time.Now()
			if err := r.site.Kill9(); err != nil {
				a.fail("kill -9: %v", err)
			}
			a.note("killed pid at %s (RSS %s)", killed.Format("15:04:05.000"), mib(rss))
			time.Sleep(500 * time.Millisecond)
			if err := r.site.Start(); err != nil {
				a.fail("restart: %v", err)
				stop.Store(true)
				wg.Wait()
				return
			}
			took, err := r.site.WaitHealthy(180 * time.Second)
			if err != nil {
				a.fail("restart: %v", err)
			}
			a.note("restarted: /healthz 200 after %s (%s after the kill)", took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
			time.Sleep(5 * time.Second)
			r.down.Store(false)
			stop.Store(true)
			wg.Wait()
			if won.Load() > 0 {
				a.fail("%d claims of the enrolled id legit-000 with another key won during the restart", won.Load())
			}
			after := r.witnessAnswers(ctx)
			a.note("identity witnesses (a report with each credential) before the kill: %v; after the restart: %v", before, after)
			for i := range before {
				if before[i] != after[i] {
					a.fail("identity decision changed by the restart: before the kill %s, after %s", before[i], after[i])
				}
			}
			a.RSSBefore = rss
		})
	r.checkpoint("after kill -9 and restart")
}

// checkpoint pauses the fleet, compares the site with the oracle, and resumes.
func (r *Run) checkpoint(when string) {
	if r.fleet == nil {
		return
	}
	resume := r.fleet.Pause()
	defer resume()
	r.checks = append(r.checks, r.checkOracle(r.ctx, when, 120*time.Second))
}

func hasHeader(m kafka.Record, key string) bool {
	for _, h := range m.Headers {
		if h.Key == key {
			return true
		}
	}
	return false
}
