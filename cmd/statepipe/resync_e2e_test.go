package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statepipe/statepipe/client"
	"github.com/statepipe/statepipe/schema"
)

// Rule 5: a gap in a client's serials older than resync-after makes its next ingest answer
// carry a resync request; the SDK answers with a full report, which closes the request.
func TestGapOlderThanResyncAfterAsksForAFullReport(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOpts{tune: func(c *runConfig) { c.Projector.ResyncAfter = 300 * time.Millisecond }})
	ctx := context.Background()
	// Serial 2 is lost on the way: the site sees 1 and 3.
	raw := s.client("gappy")
	for _, serial := range []uint64{1, 3} {
		if _, err := raw.Send(ctx, &schema.Report{V: 1, Client: "gappy", Site: s.code,
			Messages: []schema.StateMessage{msg(serial, "KB1", 2)}}); err != nil {
			t.Fatal(err)
		}
	}
	var answered atomic.Int32
	c, err := client.New(client.Config{URL: s.url, Site: s.code, ClientID: "gappy", NextSerial: 4,
		OnResync: func(context.Context) ([]schema.StateMessage, error) {
			answered.Add(1)
			return []schema.StateMessage{{TopicType: 500, TopicID: "KB1", State: 3}}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	// Heartbeats until the site asks (the gap must age 300 ms, then reach ingest).
	eventually(t, func() string {
		if err := c.Report(ctx, false, schema.StateMessage{TopicType: 701}); err != nil {
			return err.Error()
		}
		if answered.Load() == 0 {
			return "the site never asked for a resync"
		}
		return ""
	})
	// The full report answered it: KB1 is Installed, and the client is not asked again.
	eventually(t, func() string {
		res, _ := s.sql("SELECT state FROM " + database(s.code) + ".v_live_state WHERE client = 'gappy' AND topic_id = 'KB1'")
		if len(res.Rows) != 1 || res.Rows[0][0].(float64) != 3 {
			return fmt.Sprintf("KB1 state after resync: %v", res.Rows)
		}
		return ""
	})
	time.Sleep(500 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if err := c.Report(ctx, false, schema.StateMessage{TopicType: 701}); err != nil {
			t.Fatal(err)
		}
	}
	if n := answered.Load(); n != 1 {
		t.Errorf("resync answered %d times, want 1", n)
	}
}

// An administrator asks a collection for full reports; members are asked, others are not.
func TestAdministratorResyncOfACollection(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startSite(t, siteOpts{data: data})
	ctx := context.Background()
	s.importRef("collections", `{"id":"ring0","name":"ring 0","members":["m1","m2"]}`)
	eventually(t, func() string {
		res, _ := s.sql("SELECT count() FROM " + database(s.code) + ".v_collections")
		if res.Rows[0][0].(float64) != 1 {
			return "collection not imported yet"
		}
		return ""
	})
	resp, err := http.Post(s.url+"/v1/resync", "application/json", bytes.NewReader([]byte(`{"collection":"ring0"}`)))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("resync: %v %v", err, resp)
	}
	resp.Body.Close()
	asked := map[string]*atomic.Int32{"m1": {}, "m2": {}, "outsider": {}}
	for id, n := range asked {
		n := n
		c, _ := client.New(client.Config{URL: s.url, Site: s.code, ClientID: id,
			OnResync: func(context.Context) ([]schema.StateMessage, error) { n.Add(1); return nil, nil }})
		eventually(t, func() string {
			if err := c.Report(ctx, false, schema.StateMessage{TopicType: 701}); err != nil {
				return err.Error()
			}
			if id != "outsider" && n.Load() == 0 {
				return id + " not asked yet"
			}
			return ""
		})
	}
	if asked["m1"].Load() != 1 || asked["m2"].Load() != 1 || asked["outsider"].Load() != 0 {
		t.Errorf("asked m1=%d m2=%d outsider=%d", asked["m1"].Load(), asked["m2"].Load(), asked["outsider"].Load())
	}
	resp, _ = http.Post(s.url+"/v1/resync", "application/json", bytes.NewReader([]byte(`{"collection":"nope"}`)))
	if resp.StatusCode != 404 {
		t.Errorf("unknown collection: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// The answers closed the requests in resync.<site> itself (not only in this ingest's
	// memory): after a restart the members are not asked again.
	// The projector folds the full reports, then publishes the answers (tombstones).
	s.waitFolded()
	eventually(t, func() string {
		for _, id := range []string{"m1", "m2"} {
			if s.node.sites[0].resyncs.Has(id) {
				return id + "'s request is still open in resync." + s.code
			}
		}
		return ""
	})
	s.stop()
	s2 := startSite(t, siteOpts{code: s.code, data: data})
	time.Sleep(500 * time.Millisecond) // the new ingest mirrors the topic from its start
	for _, id := range []string{"m1", "m2"} {
		n := asked[id]
		c, _ := client.New(client.Config{URL: s2.url, Site: s2.code, ClientID: id, NextSerial: 100,
			OnResync: func(context.Context) ([]schema.StateMessage, error) { n.Add(1); return nil, nil }})
		if err := c.Report(ctx, false, schema.StateMessage{TopicType: 701}); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 1 {
			t.Errorf("%s asked again after a restart (%d answers)", id, n.Load())
		}
	}
}
