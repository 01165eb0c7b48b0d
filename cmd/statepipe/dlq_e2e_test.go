package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/internal/kafka"
	"github.com/statepipe/statepipe/schema"
)

// Dead letters are listed with their reason and source, and a replay after a fix folds them.
func TestDeadLettersListedAndReplayed(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	ctx := context.Background()
	kc := s.node.sites[0].cfg.Kafka
	// A record no projector can decode (vouched for: an ingest bug, say).
	s.produceVouched(t, "bad-client", []byte{0xc1, 0xff})
	// A good report an older projector dead-lettered (say, for a schema version it did not
	// know): after the fix, a replay must fold it.
	var good bytes.Buffer
	_ = schema.EncodeReport(&good, &schema.Report{V: 1, Client: "late-client", Site: s.code,
		Messages: []schema.StateMessage{{Serial: 1, Time: 1, TopicType: schema.TopicUpdateCompliance, TopicID: "KB-LATE", State: 3}}})
	dw := kafka.NewProducer(kc, kafka.StateTopic(s.code)+".dlq")
	defer dw.Close()
	if err := dw.Produce(ctx, kafka.Record{Key: []byte("late-client"), Value: good.Bytes(), Headers: []kafka.Header{
		{Key: "statepipe-dlq-reason", Value: []byte("unknown-version: v 2")}, {Key: "statepipe-dlq-source", Value: []byte("state.X/0/7")},
		{Key: schema.HeaderVouch, Value: schema.Vouch(s.siteKey(t), kafka.StateTopic(s.code), []byte("late-client"), good.Bytes(), 0)}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string {
		if !strings.Contains(s.metrics(t), `statepipe_projector_dead_letters_total{reason="undecodable",site="`+s.code+`"} 1`) {
			return "the undecodable record was not dead-lettered"
		}
		return ""
	})
	var out bytes.Buffer
	if err := runDLQ(ctx, "list", kc, s.code, "", true, nil, &out); err != nil {
		t.Fatal(err)
	}
	var recs []dlqRecord
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r dlqRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("list --json line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	var sawBad, sawLate bool
	for _, r := range recs {
		sawBad = sawBad || (r.Client == "bad-client" && strings.HasPrefix(r.Reason, "undecodable") && strings.HasPrefix(r.Source, kafka.StateTopic(s.code)+"/"))
		sawLate = sawLate || (r.Client == "late-client" && r.Reason == "unknown-version: v 2")
	}
	if len(recs) != 2 || !sawBad || !sawLate {
		t.Fatalf("dlq list: got %+v, want the undecodable record with its source and the dead-lettered report", recs)
	}
	out.Reset()
	if err := runDLQ(ctx, "replay", kc, s.code, "unknown-version", false, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "replayed 1 dead letters") {
		t.Errorf("replay said %q", out.String())
	}
	eventually(t, func() string {
		c := s.compliance("KB-LATE")
		if len(c.Updates) != 1 || c.Updates[0].Installed != 1 {
			return "the replayed report was not folded"
		}
		return ""
	})
	// Replaying again changes nothing: the report's serial is already folded.
	if err := runDLQ(ctx, "replay", kc, s.code, "unknown-version", false, nil, &out); err != nil {
		t.Fatal(err)
	}
	res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".state_messages FINAL WHERE client = 'late-client'")
	if res.Rows[0][0].(float64) != 1 {
		t.Errorf("a second replay doubled the report: %v", res.Rows)
	}
}
