package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/ingest"
	"github.com/statepipe/statepipe/report"
	"github.com/statepipe/statepipe/schema"
)

// An import answers once the site folded it, so the reports read right after it already
// count it: no 404, no zeros, on the first try. ?wait=false answers at the broker's ack.
func TestImportsAreReadableWhenAnswered(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{})
	o := oracle{}
	for c := range 4 {
		id := fmt.Sprintf("pc-%d", c)
		msgs := []schema.StateMessage{{TopicType: schema.TopicUpdateCompliance, TopicID: "KB1", State: int32(2 + c%2)}}
		if err := s.client(id).Report(t.Context(), true, msgs...); err != nil {
			t.Fatal(err)
		}
		o.add(&schema.Report{Client: id, Messages: msgs})
	}
	s.waitFor(o)

	post := func(kind, query, body string) (int, ingest.RefAck) {
		t.Helper()
		resp, err := http.Post(s.url+"/v1/ref/"+kind+query, "application/x-ndjson", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ack ingest.RefAck
		_ = json.NewDecoder(resp.Body).Decode(&ack)
		return resp.StatusCode, ack
	}
	// Three imports in a row, each read at once, as the README's example block does.
	for round, members := range [][]string{{"pc-0", "pc-1"}, {"pc-0", "pc-1", "pc-2"}, {"pc-3"}} {
		col := fmt.Sprintf("C%d", round)
		st, ack := post("collections", "", fmt.Sprintf(`{"id":%q,"name":"pilot %d","members":["%s"]}`, col, round, strings.Join(members, `","`)))
		if st != 200 || !ack.Folded || ack.Imported != 1 {
			t.Fatalf("import %s: %d %+v, want 200 folded", col, st, ack)
		}
		var c report.Compliance
		if st, ed := s.rpGet("/v1/reports/compliance?collection="+col+"&updates=KB1", &c); st != 200 {
			t.Fatalf("compliance of %s right after its import: %d %+v", col, st, ed)
		}
		want := int64(len(members))
		if len(c.Updates) != 1 || c.Updates[0].Total != want {
			t.Fatalf("compliance of %s right after its import: %+v, want %d clients", col, c.Updates, want)
		}
	}
	// A report sent with ?wait=true (client send's default) is counted when answered.
	for i := range 3 {
		c, err := client.New(client.Config{URL: s.url, Site: s.code, ClientID: fmt.Sprintf("late-%d", i), WaitFolded: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Report(t.Context(), true, schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: "KB1", State: 3}); err != nil {
			t.Fatal(err)
		}
		var rep report.Compliance
		if st, ed := s.rpGet("/v1/reports/compliance?updates=KB1", &rep); st != 200 || rep.Updates[0].Installed != int64(3+i) {
			t.Fatalf("report %d read right after a waited report: %d %+v %+v, want %d installed", i, st, ed, rep.Updates, 3+i)
		}
	}
	if st, ack := post("collections", "?wait=false", `{"id":"C9","name":"later","members":["pc-0"]}`); st != 200 || ack.Folded {
		t.Errorf("?wait=false: %d %+v, want 200 without waiting (folded false)", st, ack)
	}
	if st, _ := post("collections", "?wait=soon", `{"id":"C9","name":"later","members":["pc-0"]}`); st != 400 {
		t.Errorf("?wait=soon: %d, want 400", st)
	}
}
