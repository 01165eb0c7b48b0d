package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// ResyncSet is the set of clients asked for a full report (folding rule 5): the site's
// compacted topic resync.<site> — key client, a value for an open request, no value once
// answered — which the projector (aged serial gaps) and administrators write, mirrored by
// every ingest node (internal/kafka.KeySet), so any node answers any client.
type ResyncSet interface {
	// Since returns when the client's open request was made, if it has one.
	Since(client string) (time.Time, bool)
}

// answered remembers which clients sent a full report to this node since their request was
// made, until the projector's answer removes the request from the topic: the shared mirror is
// not changed locally, because the projector decides from it that a full report answered a
// request.
type answered struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *answered) mark(client string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.at == nil {
		a.at = map[string]time.Time{}
	}
	a.at[client] = at
}

// wanted reports whether client has a request newer than its last full report here.
func (a *answered) wanted(set ResyncSet, client string) bool {
	since, open := set.Since(client)
	if !open {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	last, ok := a.at[client]
	if ok && !since.After(last) {
		return false
	}
	delete(a.at, client)
	return true
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
	body, err := readJSONBody(w, r, 1<<16)
	if err != nil || json.Unmarshal(body, &req) != nil || (req.Site == "") == (req.Collection == "") ||
		!schema.PrintableID(req.Collection) {
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
	msgs := make([]Record, len(clients))
	reason := "admin site " + a.Site
	if req.Collection != "" {
		reason = "admin collection " + req.Collection
	}
	for i, c := range clients {
		v, _ := json.Marshal(map[string]string{"client": c, "reason": reason})
		msgs[i] = Record{Key: []byte(c), Value: v}
	}
	if len(msgs) > 0 {
		if err := a.Producer.Produce(r.Context(), msgs...); err != nil {
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeUnavailable,
				Message: "the broker did not acknowledge the resync requests: " + err.Error()}})
			return
		}
	}
	writeJSON(w, http.StatusOK, ResyncAck{Requested: len(msgs)})
}
