package main

// What reaches the projector other than through ingest (issue 11, items 2, 12, 13): records
// no ingest vouched for are dead-lettered, records no decoder can take are dead-lettered and
// never stop the projector, and a serial a client used for one message is never silently
// given to another — neither in the live state nor in the raw log.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

func encodeReport(t *testing.T, r *schema.Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := schema.EncodeReport(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Records a local process produces straight into the site's topics are not folded unless an
// ingest of the site vouched for them (today an unsigned forged report was folded, and a
// tombstone on revocations.<site> un-revoked a client).
func TestRecordsIngestDidNotVouchForAreNotFolded(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	kc := s.node.sites[0].cfg.Kafka
	site := s.siteKey(t)
	forger := genKey(t)
	report := func(client string, state int32) []byte {
		return encodeReport(t, &schema.Report{V: 1, Client: client, Site: s.code, FullTypes: []schema.TopicType{500},
			Messages: []schema.StateMessage{{Serial: 1, Time: time.Now().UnixMilli(), TopicType: 500, TopicID: "KB-FORGED", State: state}}})
	}
	topic := kafka.StateTopic(s.code)
	w := kafka.NewProducer(kc, topic)
	defer w.Close()
	forged := []kafka.Record{
		{Key: []byte("pc-a"), Value: report("pc-a", 3)}, // unsigned
		{Key: []byte("pc-b"), Value: report("pc-b", 3), Headers: []kafka.Header{{Key: schema.HeaderVouch,
			Value: schema.Vouch(forger, topic, []byte("pc-b"), report("pc-b", 3), 0)}}}, // another key's
		{Key: []byte("pc-c"), Value: report("pc-c", 3), Headers: []kafka.Header{{Key: schema.HeaderVouch,
			Value: schema.Vouch(site, "state.OTHER", []byte("pc-c"), report("pc-c", 3), 0)}}}, // another site's topic
		{Key: []byte("pc-d"), Value: report("pc-d", 2), Headers: []kafka.Header{{Key: schema.HeaderVouch,
			Value: schema.Vouch(site, topic, []byte("pc-d"), report("pc-d", 3), 0)}}}, // a vouched report, altered
	}
	if err := w.Produce(ctx, forged...); err != nil {
		t.Fatal(err)
	}
	// Reference data behind ingest's back: a catalog entry.
	rw := kafka.NewProducer(kc, kafka.RefTopic(s.code))
	defer rw.Close()
	if err := rw.Produce(ctx, kafka.Record{Key: []byte("catalog/KB-FORGED"),
		Value: []byte(`{"id":"KB-FORGED","title":"forged","first_synced":"2020-01-01T00:00:00Z"}`)}); err != nil {
		t.Fatal(err)
	}
	// What ingest vouched for folds.
	s.produceVouched(t, "pc-e", report("pc-e", 3))
	eventually(t, func() string {
		m := s.metrics(t)
		if !strings.Contains(m, `statepipe_projector_dead_letters_total{reason="unvouched",site="`+s.code+`"} 5`) {
			return "the 5 unvouched records were not all dead-lettered"
		}
		c := s.compliance("KB-FORGED")
		if len(c.Updates) != 1 || c.Updates[0].Installed != 1 || c.Computers.Total != 1 {
			return fmt.Sprintf("want exactly the vouched report folded: %+v", c)
		}
		return ""
	})
	res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".v_updates WHERE id = 'KB-FORGED'")
	if res.Rows[0][0].(float64) != 0 {
		t.Error("an unvouched catalog record was folded")
	}
	// The embedded broker listens on loopback only.
	if _, err := startRun(ctx, runConfig{Data: t.TempDir(), Listen: "127.0.0.1:0", KafkaListen: "0.0.0.0:0", Site: "P01"}, nil, quietLogger()); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the embedded broker accepted a non-loopback listener: %v", err)
	}
}

// A record that no decoder can take — 6 million nested arrays, which overflowed the
// projector's stack and crash-looped it on every start — is dead-lettered, and folding goes on.
func TestARecordNoDecoderCanTakeIsDeadLetteredAndFoldingGoesOn(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	const depth = 6 << 20
	nest := bytes.Repeat([]byte{0x91}, depth) // fixarray of one element, 6 M deep
	body := append([]byte{0x82, 0xa7}, "unknown"...)
	body = append(body, nest...)
	body = append(body, 0xc0, 0xa1, 'v', 0x01)
	s.produceVouched(t, "pc-nest", body)
	if err := s.client("pc-after").Report(ctx, true, msg(1, "KB-AFTER", 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if !strings.Contains(s.metrics(t), `statepipe_projector_dead_letters_total{reason="undecodable",site="`+s.code+`"} 1`) {
			return "the nested record was not dead-lettered"
		}
		if c := s.compliance("KB-AFTER"); len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
			return "the report after it was not folded"
		}
		return ""
	})
}

// A serial is one message of its client, whatever the key: U-ONE at s, X at s+1, then U-TWO at
// s is refused at ingest (409) and by the projector (dead letter) whatever node took it; when
// the reuse cannot be seen (U-ONE has since moved on), the raw log keeps both messages, so no
// acknowledged message is lost and a rebuild derives what the live tables hold (today the raw
// log kept only U-TWO, and a rebuild dropped U-ONE).
func TestASerialIsOneMessageWhateverItsKey(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startSite(t, siteOpts{data: data})
	ctx := context.Background()
	post := func(r *schema.Report) (int, schema.ErrorDetail) {
		b, _ := json.Marshal(r)
		st, _, e := (&trustSite{testSite: s}).post(t, "/v1/reports", b, nil)
		return st, e
	}
	now := time.Now().UnixMilli()
	m := func(serial uint64, update string, state int32) schema.StateMessage {
		return schema.StateMessage{Serial: serial, Time: now, TopicType: 500, TopicID: update, State: state}
	}
	rep := func(msgs ...schema.StateMessage) *schema.Report {
		return &schema.Report{V: 1, Client: "pc", Site: s.code, Messages: msgs}
	}
	for _, r := range []*schema.Report{rep(m(10, "U-ONE", 2)), rep(m(11, "U-X", 3))} {
		if st, e := post(r); st != 200 {
			t.Fatalf("%d %+v", st, e)
		}
	}
	if st, e := post(rep(m(12, "U-Y", 3), m(10, "U-TWO", 2))); st != 409 || e.Field != "messages[1].serial" {
		t.Fatalf("serial 10 reused for U-TWO: %d %+v, want 409 naming messages[1].serial", st, e)
	}
	// Through an ingest node that never saw serial 10 (vouched record): dead-lettered whole.
	s.produceVouched(t, "pc", encodeReport(t, rep(m(13, "U-Z", 3), m(10, "U-TWO", 2))))
	eventually(t, func() string {
		if !strings.Contains(s.metrics(t), `statepipe_projector_dead_letters_total{reason="serial_conflict",site="`+s.code+`"} 1`) {
			return "the reuse was not dead-lettered"
		}
		return ""
	})
	// Beyond the window: U-ONE moves on to serial 20, then serial 10 comes for U-THREE.
	if st, e := post(rep(m(20, "U-ONE", 3))); st != 200 {
		t.Fatalf("%d %+v", st, e)
	}
	s.produceVouched(t, "pc", encodeReport(t, rep(m(10, "U-THREE", 2))))
	if err := s.client("pc-later").Report(ctx, true, msg(1, "U-LATER", 3)); err != nil {
		t.Fatal(err)
	}
	var live report.Compliance
	eventually(t, func() string {
		if c := s.compliance("U-LATER"); len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
			return "not folded yet"
		}
		res, _ := s.sql("SELECT topic_id, state FROM " + database(s.code) + ".state_messages FINAL WHERE client = 'pc' AND serial = 10 ORDER BY topic_id")
		if fmt.Sprint(res.Rows) != "[[U-ONE 2] [U-THREE 2]]" {
			all, _ := s.sql("SELECT topic_id, serial, state, message_hash, _part FROM " + database(s.code) + ".state_messages WHERE client = 'pc' ORDER BY serial")
			ddl, _ := s.sql("SELECT sorting_key FROM system.tables WHERE database = '" + database(s.code) + "' AND name = 'state_messages'")
			return fmt.Sprintf("the raw log must keep both messages under serial 10: %v (all %v; key %v; metrics %s)", res.Rows, all.Rows, ddl.Rows, grepLines(s.metrics(t), "dead_letters"))
		}
		return ""
	})
	s.get("/v1/reports/compliance?updates=U-ONE,U-THREE,U-X", &live)
	if got := map[string]int64{}; true {
		for _, u := range live.Updates {
			got[u.UpdateID] = u.Required*10 + u.Installed
		}
		if got["U-ONE"] != 1 {
			t.Fatalf("U-ONE is not Installed: %+v", live.Updates)
		}
	}
	for _, u := range []string{"U-TWO", "U-Y", "U-Z"} { // refused: the site never folded them, so does not know them
		if code := s.get("/v1/reports/compliance?updates="+u, nil); code != 404 {
			t.Fatalf("refused messages were folded: compliance of %s answered %d, want 404", u, code)
		}
	}
	rebuildStopped(t, s)
	s2 := startSite(t, siteOpts{code: s.code, data: data})
	var rebuilt report.Compliance
	s2.get("/v1/reports/compliance?updates=U-ONE,U-THREE,U-X", &rebuilt)
	if !reflect.DeepEqual(live.Updates, rebuilt.Updates) || live.Computers != rebuilt.Computers {
		t.Errorf("a rebuild derives other counts:\n live    %+v\n rebuilt %+v", live, rebuilt)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}

// Records an administrator decides to trust — produced by an ingest of a version that did not
// vouch — are replayed vouched for with the site key, and folded; a replay without it leaves
// them dead-lettered.
func TestUnvouchedDeadLettersReplayedWithTheSiteKeyFold(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	kc := s.node.sites[0].cfg.Kafka
	w := kafka.NewProducer(kc, kafka.StateTopic(s.code))
	defer w.Close()
	old := encodeReport(t, &schema.Report{V: 1, Client: "pc-old", Site: s.code,
		Messages: []schema.StateMessage{{Serial: 1, Time: time.Now().UnixMilli(), TopicType: 500, TopicID: "KB-OLD", State: 3}}})
	if err := w.Produce(ctx, kafka.Record{Key: []byte("pc-old"), Value: old}); err != nil {
		t.Fatal(err)
	}
	deadLettered := func(n int) func() string {
		return func() string {
			if !strings.Contains(s.metrics(t), fmt.Sprintf(`statepipe_projector_dead_letters_total{reason="unvouched",site=%q} %d`, s.code, n)) {
				return fmt.Sprintf("want %d unvouched dead letters", n)
			}
			return ""
		}
	}
	eventually(t, deadLettered(1))
	var out bytes.Buffer
	if err := runDLQ(ctx, "replay", kc, s.code, "unvouched", false, nil, &out); err != nil {
		t.Fatal(err)
	}
	eventually(t, deadLettered(2)) // still nobody vouches for it
	if err := runDLQ(ctx, "replay", kc, s.code, "unvouched", false, s.siteKey(t), &out); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if c := s.compliance("KB-OLD"); len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
			return "the replayed record was not folded"
		}
		return ""
	})
}
