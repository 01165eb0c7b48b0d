package ingest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// RefHandler serves POST /v1/ref/{kind}: a reference-data file as JSON lines (catalog, lists,
// collections, deployments). Every line is validated first; one bad line rejects the whole
// file with every error listed by line number, so an import never lands half-way. A valid
// file is produced to the site's compacted topic ref.<site>, one record per line keyed
// "<kind>/<id>", and acknowledged (acks=all).
//
// Reference data is read-only below the site that owns it. In a hierarchy the replicator
// copies the parent's reference data into ref.<site> with the owning site in
// statepipe-origin (schema.HeaderOrigin); with Owners set (RefOwners.Owner, fed from
// ref.<site>), a file holding any key another site owns is refused whole before anything is
// produced: 409 conflict, naming the owner and the first such line ("field": "line N"), and
// every such line in "lines". The data is edited where it was imported, and comes down again.
//
// Read your writes: with Folded set, the answer waits until the site has folded everything
// written to the topic so far (reports then show the import), at most FoldWait; past it the
// answer is 202 with folded false (the import is safe in Kafka; is a projector running?).
// ?wait=false answers at the broker's acknowledgement.
type RefHandler struct {
	Site     string
	Producer Producer
	MaxBytes int64 // default 256 MiB
	// Topic and Key vouch for every record (schema.Vouch): the projector folds only reference
	// data an ingest of the site produced. A nil Key produces unvouched records (auth off).
	Topic string
	Key   ed25519.PrivateKey
	// Folded returns once the site's projector has folded every record of Topic written so
	// far (its group committed past them, which it does after recomputing the aggregates);
	// nil answers at the broker's acknowledgement.
	Folded   func(ctx context.Context) error
	FoldWait time.Duration // default 30 s
	// Owners returns the site that owns a reference-data key ("<kind>/<id>",
	// schema.RefRecord.Key), ok false when the key is the site's own or unknown
	// (RefOwners.Owner). Nil: every key is the site's (a standalone site, or the root).
	Owners func(key string) (owner string, ok bool)
	// OwnersRead reports whether Owners has read the site's reference topic up to date; until
	// then an import is answered 503 (it could edit what a site above owns). Nil: always.
	OwnersRead func() bool
}

// RefAck is the answer to an accepted import.
type RefAck struct {
	Kind     schema.RefKind `json:"kind"`
	Imported int            `json:"imported"`
	// Folded says the site folded the import before answering: reports show it.
	Folded bool `json:"folded"`
	// Message says why Folded is false when the site was asked to wait.
	Message string `json:"message,omitempty"`
}

// RefErrorBody is the 400 answer to a file with bad lines, and the 409 answer to a file with
// lines another site owns: the usual error plus every such line.
type RefErrorBody struct {
	Error schema.ErrorDetail `json:"error"`
	Lines []schema.LineError `json:"lines"`
}

func (h *RefHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := schema.RefKind(r.PathValue("kind"))
	if !kind.Valid() {
		writeJSON(w, http.StatusNotFound, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeNotFound,
			Message: fmt.Sprintf("no reference kind %q (catalog, lists, collections, deployments)", kind), Field: "kind"}})
		return
	}
	wait, err := waitParam(r, h.Folded != nil)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeMalformed,
			Message: err.Error(), Field: "wait"}})
		return
	}
	limit := h.MaxBytes
	if limit == 0 {
		limit = 256 << 20
	}
	recs, lineErrs := schema.ParseRefLines(kind, http.MaxBytesReader(w, r.Body, limit))
	if len(lineErrs) > 0 {
		first := lineErrs[0]
		writeJSON(w, http.StatusBadRequest, RefErrorBody{
			Error: schema.ErrorDetail{Code: schema.CodeMalformed, Field: "line " + strconv.Itoa(first.Line),
				Message: fmt.Sprintf("%d bad line(s); nothing imported; first: %s", len(lineErrs), first.Error())},
			Lines: lineErrs,
		})
		return
	}
	if len(recs) == 0 {
		writeJSON(w, http.StatusBadRequest, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeMalformed,
			Message: "the file has no records", Field: "body"}})
		return
	}
	if h.OwnersRead != nil && !h.OwnersRead() {
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusServiceUnavailable, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeUnavailable,
			Message: "this site is still reading which reference data the sites above own; retry in a few seconds (nothing imported)"}})
		return
	}
	if kind == schema.RefDeployments {
		// A deployment's site is the site it is created at: another site's name would
		// contradict who owns it below.
		for _, rec := range recs {
			v, err := schema.DecodeRef(schema.RefDeployments, rec.Value)
			if d, ok := v.(*schema.Deployment); err == nil && ok && d.Site != "" && d.Site != h.Site {
				writeJSON(w, http.StatusBadRequest, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeMalformed, Field: "line " + strconv.Itoa(rec.Line),
					Message: fmt.Sprintf("field site: deployment %s names site %s, but it is being created at %s: leave site out (the site fills it); nothing imported", d.ID, d.Site, h.Site)}})
				return
			}
		}
	}
	if body, conflict := h.owned(kind, recs); conflict {
		writeJSON(w, http.StatusConflict, body)
		return
	}
	now := time.Now()
	msgs := make([]Record, len(recs))
	for i, rec := range recs {
		value := rec.Value
		if kind == schema.RefDeployments {
			value = stampSite(value, h.Site)
		}
		msgs[i] = Record{Key: []byte(rec.Key(kind)), Value: value, Time: now}
		if h.Key != nil {
			msgs[i].Headers = []Header{{Key: schema.HeaderVouch, Value: schema.Vouch(h.Key, h.Topic, msgs[i].Key, value, 0)}}
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	if err := h.Producer.Produce(ctx, msgs...); err != nil {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, schema.ErrorBody{Error: schema.ErrorDetail{Code: schema.CodeUnavailable,
			Message: "the broker did not acknowledge the import; nothing may be assumed imported, retry (imports are idempotent): " + err.Error()}})
		return
	}
	ack := RefAck{Kind: kind, Imported: len(recs)}
	if !wait || h.Folded == nil {
		writeJSON(w, http.StatusOK, ack)
		return
	}
	if ack.Folded, ack.Message = waitFolded(r.Context(), h.FoldWait, h.Folded); !ack.Folded {
		writeJSON(w, http.StatusAccepted, ack)
		return
	}
	writeJSON(w, http.StatusOK, ack)
}

// owned refuses a file holding keys another site owns: the 409 answer naming the first, with
// every such line.
func (h *RefHandler) owned(kind schema.RefKind, recs []schema.RefRecord) (RefErrorBody, bool) {
	if h.Owners == nil {
		return RefErrorBody{}, false
	}
	var body RefErrorBody
	for _, rec := range recs {
		key := rec.Key(kind)
		owner, ok := h.Owners(key)
		if !ok || owner == h.Site {
			continue
		}
		reason := fmt.Sprintf("%s is owned by site %s: edit it there (it is read-only at %s)", key, owner, h.Site)
		if len(body.Lines) == 0 {
			body.Error = schema.ErrorDetail{Code: schema.CodeConflict, Field: "line " + strconv.Itoa(rec.Line), Message: reason}
		}
		body.Lines = append(body.Lines, schema.LineError{Line: rec.Line, Field: "id", Reason: reason})
	}
	if n := len(body.Lines); n > 1 {
		body.Error.Message += fmt.Sprintf("; %d lines hold reference data of other sites; nothing imported", n)
	} else if n == 1 {
		body.Error.Message += "; nothing imported"
	}
	return body, len(body.Lines) > 0
}

// stampSite sets a deployment's originating site when the file leaves it empty.
func stampSite(value []byte, site string) []byte {
	v, err := schema.DecodeRef(schema.RefDeployments, value)
	if err != nil {
		return value
	}
	d := v.(*schema.Deployment)
	if d.Site != "" {
		return value
	}
	d.Site = site
	out, err := json.Marshal(d)
	if err != nil {
		return value
	}
	return out
}
