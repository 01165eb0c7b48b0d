package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/statepipe/statepipe/configmgr"
	"github.com/statepipe/statepipe/schema"
)

// ConfigMgr returns the handler of POST /v1/configmgr/reports: ConfigMgr state message
// documents (configmgr package), one per request or several in a batch, in UTF-16 or UTF-8,
// relayed by a gateway (a credential of kind schema.KindGateway signs the exact body) or, where
// the site accepts unsigned reports, unsigned.
//
// Each document becomes one report for its own client and goes the way every report goes
// (accept): the site, the gateway's authorisation, the serial check, one Kafka record. Its
// serials are ConfigMgr's SerialNumber above the gateway's relay base (schema.RelayBase), and
// its Via names the gateway. A document is accepted or refused whole; the answer
// (schema.ConfigMgrAnswer) has an entry per document in body order. The status is 200 when
// every document was accepted (or held nothing statepipe models), that of the first refusal
// when none was, and 207 when some were and some were not.
func (h *Handler) ConfigMgr() http.Handler {
	return http.HandlerFunc(h.serveConfigMgr)
}

// configMgrMedia are the media types of POST /v1/configmgr/reports; the encoding is read from
// the document (byte order mark, declaration), not from a charset parameter.
var configMgrMedia = []string{"application/xml", "text/xml"}

// MaxDocuments is the most ConfigMgr documents one request may carry (413 above): each is a
// report of its own, checked and produced within the one request.
const MaxDocuments = 1000

func (h *Handler) serveConfigMgr(w http.ResponseWriter, r *http.Request) {
	in, ok := h.receive(w, r, configMgrMedia, h.cfg.Auth != nil && h.cfg.Auth.cfg.Mode != AuthOff)
	if !ok {
		return
	}
	defer in.held.release()
	results, errs := configmgr.TranslateBatch(in.body.Bytes(), h.cfg.Site)
	if len(results) > MaxDocuments {
		h.rejected.WithLabelValues("too_many_messages").Inc()
		h.fail(w, http.StatusRequestEntityTooLarge, schema.CodeTooLarge,
			fmt.Sprintf("%d documents, at most %d per request", len(results), MaxDocuments), "body")
		return
	}
	answer := schema.ConfigMgrAnswer{Documents: make([]schema.ConfigMgrDocument, len(results))}
	via, base := schema.ViaUnsigned, schema.RelayBase(0)
	if in.cred != nil {
		via, base = in.cred.Client, h.cfg.Auth.ids.RelayBase()
	}
	type admitted struct {
		doc int
		rep *schema.Report
	}
	var (
		pending []admitted
		recs    []Record
		refused = make([]*rejection, len(results))
	)
	for i, res := range results {
		doc := &answer.Documents[i]
		doc.Client = res.Machine.ClientID
		doc.Skipped = skippedByType(res.Skipped)
		doc.SkippedStates = res.SkippedStates
		switch rep := res.Report; {
		case errs[i] != nil:
			refused[i] = translationRejection(errs[i])
		case rep == nil: // nothing statepipe models: accepted, nothing to write
			h.requests.WithLabelValues("accepted").Inc()
		case len(rep.Messages) > h.cfg.MaxMessages:
			refused[i] = &rejection{http.StatusRequestEntityTooLarge, schema.CodeTooLarge, "too_many_messages",
				fmt.Sprintf("%d state messages statepipe models, more than the limit of %d per report (--ingest.max-messages)", len(rep.Messages), h.cfg.MaxMessages), "ReportBody", 0}
		default:
			rep.Via = via
			for j := range rep.Messages {
				rep.Messages[j].Serial += base
			}
			rec, rej := h.admit(in, rep)
			if rej != nil {
				rej.field = documentField(rej.field, res.Elements)
				refused[i] = rej
				continue
			}
			pending = append(pending, admitted{i, rep})
			recs = append(recs, rec)
		}
	}
	// One produce for the request's records: Kafka acknowledges them together.
	if len(recs) > 0 {
		rej := h.produce(r.Context(), pending[0].rep, recs...)
		for _, p := range pending {
			if rej != nil {
				refused[p.doc] = rej
			} else {
				answer.Documents[p.doc].Messages = h.acked(in, p.rep).Accepted
			}
		}
	}
	status := http.StatusOK
	var retryAfter time.Duration
	for i, rej := range refused {
		doc := &answer.Documents[i]
		if rej == nil {
			doc.Status = http.StatusOK
			answer.Accepted++
			continue
		}
		// Counted as a report refused on its own would be.
		if rej.reason != "" {
			h.rejected.WithLabelValues(rej.reason).Inc()
		}
		h.requests.WithLabelValues(rej.code).Inc()
		doc.Status = rej.status
		doc.Error = &schema.ErrorDetail{Code: rej.code, Message: rej.message, Field: rej.field}
		retryAfter = max(retryAfter, rej.retryAfter)
		answer.Refused++
		if answer.Error == nil {
			answer.Error, status = doc.Error, rej.status
		}
	}
	h.answeredAll.Add(1)
	switch {
	case answer.Refused == 0:
		h.duration.Observe(time.Since(in.start).Seconds())
		// ?wait=true: every client's records folded, in turn (the site's fold is per key).
		for i := range answer.Documents {
			if d := &answer.Documents[i]; in.wait && d.Messages > 0 {
				var ack schema.Ack
				h.waitFold(r.Context(), in, []byte(d.Client), &ack)
				answer.Folded, answer.Message = ack.Folded, ack.Message
				if !ack.Folded {
					break
				}
			}
		}
	case answer.Accepted > 0:
		status = http.StatusMultiStatus
	case status == http.StatusServiceUnavailable:
		h.answered503.Add(1)
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, status, answer)
}

// translationRejection is the 400 (413 for a bound) of a document the translator refused,
// its field the element's path and attribute ("ReportBody/StateMessage[3]/State@ID").
func translationRejection(err error) *rejection {
	rej := &rejection{status: http.StatusBadRequest, code: schema.CodeMalformed, reason: "invalid", message: err.Error(), field: "body"}
	var ce *configmgr.Error
	if errors.As(err, &ce) {
		rej.field = ce.Path
		if ce.Attr != "" {
			rej.field += "@" + ce.Attr
		}
		if errors.Is(err, configmgr.ErrTooLarge) {
			rej.status, rej.code, rej.reason = http.StatusRequestEntityTooLarge, schema.CodeTooLarge, "document_too_large"
		}
	}
	return rej
}

// messageField matches a report field naming a message: messages[i].serial.
var messageField = regexp.MustCompile(`^messages\[(\d+)\]\.?(.*)$`)

// documentField renames a report field ("messages[2].serial") after the document's element
// and attribute ("ReportBody/StateMessage[5]@SerialNumber"), elements[i] being the
// StateMessage number of the report's message i; other fields are kept.
func documentField(field string, elements []int) string {
	if field == "client" {
		return "ReportHeader/Identification/Machine/ClientID"
	}
	m := messageField.FindStringSubmatch(field)
	if m == nil {
		return field
	}
	i, err := strconv.Atoi(m[1])
	if err != nil || i >= len(elements) {
		return field
	}
	path := "ReportBody/StateMessage[" + strconv.Itoa(elements[i]) + "]"
	switch m[2] {
	case "serial":
		return path + "@SerialNumber"
	case "time":
		return path + "@MessageTime"
	case "topic_type":
		return path + "/Topic@Type"
	case "topic_id":
		return path + "/Topic@ID"
	case "state":
		return path + "/State@ID"
	case "error", "":
		return path
	}
	return path + "/UserParameters"
}

// skippedByType renders the translator's counts by topic type with string keys (JSON).
func skippedByType(m map[int]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for t, n := range m {
		out[strconv.Itoa(t)] = n
	}
	return out
}
