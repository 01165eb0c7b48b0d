package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/schema"
)

// ResyncSet is the set of clients asked for a full report (folding rule 5). It mirrors the
// site's compacted topic resync.<site> — key client, a value for an open request, no value
// once answered — which the projector (aged serial gaps) and administrators (statepipe
// resync) write. Every ingest node reads the whole topic, so any node answers any client.
type ResyncSet struct {
	mu      sync.RWMutex
	clients map[string]struct{}
}

// NewResyncSet returns an empty set.
func NewResyncSet() *ResyncSet { return &ResyncSet{clients: map[string]struct{}{}} }

// Wanted reports whether client is asked for a full report.
func (s *ResyncSet) Wanted(client string) bool {
	if s == nil {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.clients[client]
	return ok
}

// Answered removes client: it just sent a full report.
func (s *ResyncSet) Answered(client string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	delete(s.clients, client)
	s.mu.Unlock()
}

func (s *ResyncSet) apply(m kafkago.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m.Value == nil {
		delete(s.clients, string(m.Key))
		return
	}
	s.clients[string(m.Key)] = struct{}{}
}

// Follow reads every partition of topic from the start until ctx ends, applying each record.
// newReader builds a reader of one partition (kafka-go, no consumer group: every node reads
// everything).
func (s *ResyncSet) Follow(ctx context.Context, partitions []int, newReader func(partition int) *kafkago.Reader, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, p := range partitions {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := newReader(p)
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, context.Canceled) {
						return
					}
					log.Warn("cannot read resync requests; retrying", "partition", p, "err", err)
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Second):
					}
					continue
				}
				s.apply(m)
			}
		}(p)
	}
	wg.Wait()
}

// ResyncAdmin serves POST /v1/resync: an administrator asks a whole site, or a collection's
// members, for full reports. Body {"collection": "ID"} or {"site": "CODE"}.
type ResyncAdmin struct {
	Site     string
	Producer Producer // writer on resync.<site>
	// Clients lists the clients of a collection, or of the site when collection is empty; a
	// *NotFound error names an unknown collection.
	Clients func(ctx context.Context, collection string) ([]string, error)
}

// ResyncRequest is the body of POST /v1/resync.
type ResyncRequest struct {
	Site       string `json:"site,omitempty"`
	Collection string `json:"collection,omitempty"`
}

// ResyncAck answers POST /v1/resync.
type ResyncAck struct {
	Requested int `json:"requested"`
}

func (a *ResyncAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req ResyncRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil ||
		(req.Site == "") == (req.Collection == "") {
		writeJSON(w, http.StatusBadRequest, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeMalformed,
			Message: `body must be {"site": "CODE"} or {"collection": "ID"}`, Field: "body"}})
		return
	}
	if req.Site != "" && req.Site != a.Site {
		writeJSON(w, http.StatusNotFound, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeNotFound,
			Message: fmt.Sprintf("this is site %s, not %s", a.Site, req.Site), Field: "site"}})
		return
	}
	clients, err := a.Clients(r.Context(), req.Collection)
	if err != nil {
		writeJSON(w, http.StatusNotFound, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeNotFound,
			Message: err.Error(), Field: "collection"}})
		return
	}
	msgs := make([]kafkago.Message, len(clients))
	reason := "admin site " + a.Site
	if req.Collection != "" {
		reason = "admin collection " + req.Collection
	}
	for i, c := range clients {
		v, _ := json.Marshal(map[string]string{"client": c, "reason": reason})
		msgs[i] = kafkago.Message{Key: []byte(c), Value: v}
	}
	if len(msgs) > 0 {
		if err := a.Producer.WriteMessages(r.Context(), msgs...); err != nil {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeUnavailable,
				Message: "the broker did not acknowledge the resync requests: " + err.Error()}})
			return
		}
	}
	writeJSON(w, http.StatusOK, ResyncAck{Requested: len(msgs)})
}
