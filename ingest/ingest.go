// Package ingest is the HTTP receiver of state reports: POST /v1/reports in msgpack or JSON,
// bounded in size, validated against DESIGN §3, produced to the site's Kafka topic keyed by
// client id, and acknowledged with 200 only after Kafka acknowledged the record with acks=all.
//
// One report becomes one Kafka record (value: the report re-encoded in canonical msgpack;
// timestamp: the acceptance time the projector measures visibility from). Keying by client
// keeps one client's reports in one partition, in order.
//
// Errors use schema.ErrorBody with the status DESIGN §4 assigns: 400 malformed (naming the
// field), 401 unsigned or badly signed, 403 wrong site or client, 409 a serial accepted before
// with other content (serials.go), 413 too large, 415 unknown media type, 429 a client over its
// rate, 503 broker unavailable or ingest overloaded (with Retry-After). The
// trust boundary (auth.go, enroll.go) verifies the site-signed credential and the client's
// signature over the exact body before decoding, then that the report is the credential's
// client's at its site.
//
// It must not talk to the store: a report is the broker's once acknowledged.
package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/statepipe/statepipe/schema"
)

// Config bounds what ingest accepts.
type Config struct {
	// Site is the site code this ingest serves; reports for another site get 403.
	Site string
	// MaxBodyBytes is the largest request body (default 8 MiB): a full scan of 30,000
	// updates in msgpack is about 2.5 MiB.
	MaxBodyBytes int64
	// MaxMessages is the most state messages one report may carry (default 50,000).
	MaxMessages int
	// ProduceTimeout bounds the wait for Kafka's acknowledgement before answering 503
	// (default 10 s).
	ProduceTimeout time.Duration
	// FoldWait bounds how long a request that waits for the site to fold what it wrote does
	// so (read your writes: reference-data imports by default, reports with ?wait=true).
	FoldWait time.Duration
	// Folded returns once the site folded every record produced with key so far (the
	// projector's group committed past it); nil: requests never wait.
	Folded func(ctx context.Context, key []byte) error `json:"-"`
	// MaxWaiting bounds the reports waiting at once for the site to fold them (?wait=true);
	// past it a report is answered at once, folded false (default 1,000). A waiting report
	// holds no in-flight slot and no body memory: only its connection.
	MaxWaiting int
	// RetryAfter is the Retry-After (seconds) sent with 503 (default 2).
	RetryAfter int
	// MaxInFlight bounds the reports being checked and produced at once (default 256): above
	// it ingest answers 503 with Retry-After at once. A report takes its slot once its body
	// has arrived, so clients sending slowly cannot hold the slots (body.go).
	MaxInFlight int
	// BodyMemoryBytes bounds the bytes of report bodies held at once, being read or handled
	// (default 512 MiB; 0: the default). Bodies are charged as their buffers grow with the
	// bytes that arrived (at most about twice those bytes; a client that sent nothing yet
	// holds 4 KiB), and released when the request ends; above it 503 with Retry-After.
	BodyMemoryBytes int64
	// SerialCacheBytes bounds the per-client memory of last accepted reports that answers a
	// reused serial with other content 409 (default 64 MiB; 0 turns the check off — the
	// projector still refuses such reports).
	SerialCacheBytes int64
	// Topic is the state topic records are produced to: the site key's vouch covers it.
	Topic string `json:"-"`
	// Resync is the set of clients asked for a full report; nil asks nobody.
	Resync ResyncSet `json:"-"`
	// Auth verifies credentials and signatures and paces clients; nil accepts everyone
	// (tests of other concerns).
	Auth *Auth `json:"-"`
	// Pacing tells each accepted report the interval to batch for and the phased deployments
	// released to its client; nil: 0 (keep your own) and none.
	Pacing Pacer `json:"-"`
}

// Pacer is what the answer to a report carries from the site's pacing.
type Pacer interface {
	// ReportInterval is the interval clients should batch their messages for, in seconds
	// (0: the site does not pace).
	ReportInterval() int
	// Released returns the phased deployments released to client (nil: none).
	Released(client string) []string
}

// DefaultConfig returns the defaults of every bound (the flags' defaults); Site and Topic are
// the caller's.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:     8 << 20,
		MaxMessages:      schema.DefaultLimits.MaxMessages,
		ProduceTimeout:   10 * time.Second,
		FoldWait:         30 * time.Second,
		MaxWaiting:       1000,
		RetryAfter:       2,
		MaxInFlight:      256,
		BodyMemoryBytes:  DefaultBodyMemoryBytes,
		SerialCacheBytes: 64 << 20,
	}
}

// RegisterFlags registers ingest's flags under prefix, with DefaultConfig's values as defaults.
func (c *Config) RegisterFlags(prefix string, fs *flag.FlagSet) {
	d := DefaultConfig()
	fs.Int64Var(&c.MaxBodyBytes, prefix+"max-body-bytes", d.MaxBodyBytes, "largest report body in bytes (413 above)")
	fs.IntVar(&c.MaxMessages, prefix+"max-messages", d.MaxMessages, "most state messages per report (413 above)")
	fs.DurationVar(&c.ProduceTimeout, prefix+"produce-timeout", d.ProduceTimeout, "longest wait for Kafka's acknowledgement before answering 503")
	fs.DurationVar(&c.FoldWait, prefix+"fold-wait", d.FoldWait, "longest wait of a request for the site to fold what it wrote (reference-data imports unless ?wait=false, reports with ?wait=true); past it imports answer 202 and reports folded:false")
	fs.IntVar(&c.RetryAfter, prefix+"retry-after", d.RetryAfter, "Retry-After seconds sent with 503")
	fs.IntVar(&c.MaxWaiting, prefix+"max-waiting", d.MaxWaiting, "most reports waiting at once for the site to fold them (?wait=true); past it they are answered at once with folded false")
	fs.IntVar(&c.MaxInFlight, prefix+"max-in-flight", d.MaxInFlight, "most reports checked and produced at once, once their bodies arrived; above it 503 with Retry-After (bounds the work and memory of decoded reports)")
	fs.Int64Var(&c.BodyMemoryBytes, prefix+"body-memory-bytes", d.BodyMemoryBytes, "memory for report bodies held at once, charged as their bytes arrive (a client trickling its body holds 4 KiB); above it 503 with Retry-After. Bodies are read before --"+prefix+"max-in-flight applies, so this bounds their memory: 64 full scans of 8 MiB")
	fs.Int64Var(&c.SerialCacheBytes, prefix+"serial-cache-bytes", d.SerialCacheBytes, "memory for each client's last accepted report, to answer a reused serial with other content 409 (0: off)")
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Site == "":
		return errors.New("ingest: site is required")
	case c.MaxBodyBytes < 1024:
		return errors.New("ingest: max-body-bytes must be at least 1024")
	case c.MaxMessages < 1:
		return errors.New("ingest: max-messages must be at least 1")
	case c.ProduceTimeout <= 0:
		return errors.New("ingest: produce-timeout must be positive")
	case c.BodyMemoryBytes != 0 && c.BodyMemoryBytes < c.MaxBodyBytes:
		return fmt.Errorf("ingest: body-memory-bytes (%d) must be at least max-body-bytes (%d), or no largest body could be read", c.BodyMemoryBytes, c.MaxBodyBytes)
	}
	return nil
}

// Handler serves POST /v1/reports.
type Handler struct {
	cfg    Config
	prod   Producer
	log    *slog.Logger
	limits schema.Limits

	requests *prometheus.CounterVec
	rejected *prometheus.CounterVec
	messages prometheus.Counter
	duration prometheus.Histogram
	buffers  *bodyBuffers // body.go
	budget   *bodyBudget
	answered answered
	inFlight chan struct{} // one token per report being handled
	waiting  chan struct{} // one token per report waiting for its fold
	serials  *serials

	answered503, answeredAll atomic.Int64 // report requests answered, and of them 503 (Shed)
}

// Shed returns the report requests answered since the handler started, and of them those
// refused with 503 (overloaded, body memory, broker unavailable): the pacing's shedding signal.
func (h *Handler) Shed() (shed, total int64) { return h.answered503.Load(), h.answeredAll.Load() }

// New builds the handler; reg (may be nil) receives its metrics, already labelled by site.
func New(cfg Config, prod Producer, reg prometheus.Registerer, log *slog.Logger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.BodyMemoryBytes == 0 {
		cfg.BodyMemoryBytes = max(DefaultBodyMemoryBytes, cfg.MaxBodyBytes)
	}
	f := promauto.With(reg)
	budget := newBodyBudget(cfg.BodyMemoryBytes)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "statepipe_ingest_body_bytes",
		Help: "Bytes of report bodies held (read or being read), of --ingest.body-memory-bytes."},
		func() float64 { return float64(budget.held.Load()) })
	lim := schema.DefaultLimits
	lim.MaxMessages = cfg.MaxMessages
	return &Handler{
		cfg: cfg, prod: prod, log: log, limits: lim,
		requests: withLabels(f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_ingest_requests_total",
			Help: "Report requests by outcome (accepted or the error code)."}, []string{"code"}), requestCodes),
		rejected: withLabels(f.NewCounterVec(prometheus.CounterOpts{Name: "statepipe_ingest_rejected_total",
			Help: "Reports refused, by reason (the limit or check that refused them)."}, []string{"reason"}), rejectReasons),
		messages: f.NewCounter(prometheus.CounterOpts{Name: "statepipe_ingest_messages_total",
			Help: "State messages accepted (acknowledged by Kafka)."}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "statepipe_ingest_request_duration_seconds",
			Help:    "Time from request to answer for accepted reports (includes Kafka's acks=all).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		buffers:  newBodyBuffers(int(cfg.MaxBodyBytes)),
		budget:   budget,
		inFlight: make(chan struct{}, max(cfg.MaxInFlight, 1)),
		waiting:  make(chan struct{}, max(cfg.MaxWaiting, 1)),
		serials:  newSerials(cfg.SerialCacheBytes),
	}, nil
}

// ServeHTTP handles one report.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in, ok := h.receive(w, r, reportMedia, false)
	if !ok {
		return
	}
	defer in.held.release()
	// The decoders count messages before decoding any (ErrTooManyMessages: 413), and bound
	// nesting, integer ranges and what decoding allocates (400).
	var rep schema.Report
	var err error
	if in.media == schema.MediaJSON {
		err = schema.DecodeReportJSON(in.body.Bytes(), &rep, h.limits)
	} else {
		err = schema.DecodeReportLimits(in.body.Bytes(), &rep, h.limits)
	}
	if errors.Is(err, schema.ErrTooManyMessages) {
		h.rejected.WithLabelValues("too_many_messages").Inc()
		h.fail(w, http.StatusRequestEntityTooLarge, schema.CodeTooLarge,
			fmt.Sprintf("more than the limit of %d messages per report", h.cfg.MaxMessages), "messages")
		return
	}
	if err == nil {
		err = rep.Validate(h.limits)
	}
	if err == nil && rep.Via != "" {
		err = &schema.FieldError{Field: "via", Reason: "is set by the site's ingest for relayed reports, never by a client"}
	}
	if err != nil {
		h.rejected.WithLabelValues("invalid").Inc()
		h.failInput(w, err)
		return
	}
	rec, rej := h.admit(in, &rep)
	if rej == nil {
		rej = h.produce(r.Context(), &rep, rec)
	}
	if rej != nil {
		h.reject(w, rej)
		return
	}
	ack := h.acked(in, &rep)
	h.answeredAll.Add(1)
	h.duration.Observe(time.Since(in.start).Seconds())
	h.waitFold(r.Context(), in, rec.Key, ack)
	writeJSON(w, http.StatusOK, ack)
}

// The media types of POST /v1/reports.
var reportMedia = []string{schema.MediaMsgpack, "application/x-msgpack", schema.MediaJSON}

// incoming is a request whose body has arrived and verified, holding its body and its
// in-flight slot until held.release.
type incoming struct {
	start, now time.Time
	media      string
	cred       *schema.Credential // nil: unsigned
	wait       bool               // ?wait=true
	body       body
	held       holds
}

// receive checks what can be checked of a request before its body (method, media type,
// length, credential, pacing), reads its body, takes an in-flight slot and verifies the
// body's signature; a gateway's credential is required for relay requests (gateway) and
// refused for the others. It answers the request itself when it returns false.
func (h *Handler) receive(w http.ResponseWriter, r *http.Request, media []string, gateway bool) (*incoming, bool) {
	in := &incoming{start: time.Now()}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, schema.CodeMalformed, "use POST", "")
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(media, mt) {
		h.fail(w, http.StatusUnsupportedMediaType, schema.CodeUnsupportedMedia,
			fmt.Sprintf("Content-Type %q is not supported: use %s", r.Header.Get("Content-Type"), strings.Join(media, " or ")), "Content-Type")
		return nil, false
	}
	in.media = mt
	if r.ContentLength > h.cfg.MaxBodyBytes {
		h.rejected.WithLabelValues("body_too_large").Inc()
		h.failBody(w, &rejection{status: http.StatusRequestEntityTooLarge, code: schema.CodeTooLarge,
			message: fmt.Sprintf("body of %d bytes exceeds the limit of %d bytes (--ingest.max-body-bytes)", r.ContentLength, h.cfg.MaxBodyBytes), field: "body"})
		return nil, false
	}
	// The credential before the body: a request no enrolled client signed takes no body
	// budget (body.go) — an anonymous sender cannot fill it where signatures are required.
	in.now = time.Now()
	if h.cfg.Auth != nil {
		cred, rej := h.cfg.Auth.credential(r, in.now)
		switch {
		case rej != nil:
		case cred != nil && gateway != (cred.Kind == schema.KindGateway):
			rej = kindRejection(cred, gateway)
		case cred != nil && !gateway:
			// A gateway is not paced: it relays for a site's clients, bounded by the
			// in-flight slots like everyone.
			rej = h.cfg.Auth.pace(cred.Client, in.now)
		}
		if rej != nil {
			w.Header().Set("Connection", "close") // the body is not read
			h.reject(w, rej)
			return nil, false
		}
		in.cred = cred
	}
	if in.wait, err = waitParam(r, false); err != nil {
		h.fail(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "wait")
		return nil, false
	}
	// The body first, then the slot: a client sending slowly holds only the body budget it
	// was charged for what arrived (body.go), never one of the slots whole reports need.
	buf, rej := h.readBody(r)
	if rej != nil {
		h.failBody(w, rej)
		return nil, false
	}
	in.body = buf
	in.held.add(func() { h.releaseBody(buf) })
	select {
	case h.inFlight <- struct{}{}:
		in.held.add(func() { <-h.inFlight })
	default:
		in.held.release()
		h.rejected.WithLabelValues("overloaded").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(h.cfg.RetryAfter))
		h.fail(w, http.StatusServiceUnavailable, schema.CodeUnavailable,
			fmt.Sprintf("ingest is handling %d reports already; retry later", cap(h.inFlight)), "")
		return nil, false
	}
	if h.cfg.Auth != nil {
		if rej := h.cfg.Auth.verifyBody(in.cred, r, buf.Bytes()); rej != nil {
			in.held.release()
			h.reject(w, rej)
			return nil, false
		}
	}
	return in, true
}

// kindRejection refuses a credential on the wrong endpoint: a client's on a relay endpoint,
// a gateway's on a client's.
func kindRejection(cred *schema.Credential, gateway bool) *rejection {
	if gateway {
		return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
			fmt.Sprintf("%s is a client: relaying ConfigMgr documents needs a gateway's credential (statepipe client enroll --gateway)", cred.Client), schema.HeaderCredential, 0}
	}
	return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
		fmt.Sprintf("%s is a gateway: it relays ConfigMgr documents (POST /v1/configmgr/reports), it does not report for itself", cred.Client), schema.HeaderCredential, 0}
}

// admit takes a decoded, valid report through what every way in shares: the site, the trust
// boundary's authorisation and pacing, the serial check; it returns the record to produce
// (re-encoded and vouched for), or the rejection to answer.
func (h *Handler) admit(in *incoming, rep *schema.Report) (Record, *rejection) {
	if rep.Site != h.cfg.Site {
		return Record{}, &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_site",
			fmt.Sprintf("this ingest serves site %s, not %s", h.cfg.Site, rep.Site), "site", 0}
	}
	if h.cfg.Auth != nil {
		rej := h.cfg.Auth.authorize(in.cred, rep, in.now)
		if rej == nil && in.cred == nil && rep.Via == "" {
			// An unsigned client is paced once decoded; relays (a site's clients, through one
			// request) are bounded by the in-flight slots.
			rej = h.cfg.Auth.pace(rep.Client, in.now)
		}
		if rej != nil {
			return Record{}, rej
		}
	}
	if rej := h.serials.claim(rep); rej != nil {
		return Record{}, rej
	}
	// Re-encode canonically: what lands in Kafka is always the current msgpack version,
	// whatever the client sent.
	var value bytes.Buffer
	value.Grow(min(in.body.Len(), 128*len(rep.Messages)+256))
	if err := schema.EncodeReport(&value, rep); err != nil {
		panic("BUG: cannot encode a validated report: " + err.Error())
	}
	rec := Record{
		Key:     []byte(rep.Client),
		Value:   value.Bytes(),
		Time:    time.Now(),
		Headers: []Header{{Key: "v", Value: []byte(strconv.Itoa(schema.Version))}},
	}
	if h.cfg.Auth != nil && h.cfg.Auth.Key() != nil {
		// The projector folds only what an ingest of the site vouched for, and takes the
		// acceptance time from the vouched header, not from the record timestamp.
		at := rec.Time.UnixMilli()
		rec.Headers = append(rec.Headers, Header{Key: schema.HeaderAccepted, Value: schema.AcceptedHeader(at)},
			Header{Key: schema.HeaderVouch, Value: schema.Vouch(h.cfg.Auth.Key(), h.cfg.Topic, rec.Key, rec.Value, at)})
	}
	return rec, nil
}

// produce produces the records of admitted reports (rep: the first, for the log) and waits
// for Kafka's acknowledgement of all of them, bounded by ProduceTimeout.
func (h *Handler) produce(ctx context.Context, rep *schema.Report, recs ...Record) *rejection {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ProduceTimeout)
	defer cancel()
	err := h.prod.Produce(ctx, recs...)
	if errors.Is(err, ErrRecordTooLarge) {
		return &rejection{status: http.StatusRequestEntityTooLarge, code: schema.CodeTooLarge,
			message: "the report is larger than the Kafka topic accepts (max.message.bytes); send fewer messages per report", field: "body"}
	}
	if err != nil {
		h.log.Warn("kafka did not acknowledge a report", "client", rep.Client, "records", len(recs), "err", err)
		return &rejection{status: http.StatusServiceUnavailable, code: schema.CodeUnavailable,
			message: "the broker did not acknowledge the report; retry later", retryAfter: time.Duration(h.cfg.RetryAfter) * time.Second}
	}
	return nil
}

// acked counts a report Kafka acknowledged and returns its acknowledgement.
func (h *Handler) acked(in *incoming, rep *schema.Report) *schema.Ack {
	h.messages.Add(float64(len(rep.Messages)))
	h.requests.WithLabelValues("accepted").Inc()
	ack := &schema.Ack{Accepted: len(rep.Messages), Released: []string{}}
	if p := h.cfg.Pacing; p != nil {
		ack.ReportInterval = p.ReportInterval()
		if rel := p.Released(rep.Client); rel != nil {
			ack.Released = rel
		}
	}
	switch {
	case h.cfg.Resync == nil || rep.Via != "": // relayed clients are not followed for resync
	case len(rep.FullTypes) > 0:
		h.answered.mark(rep.Client, in.start) // the projector confirms through the resync topic
	default:
		ack.Resync = h.answered.wanted(h.cfg.Resync, rep.Client)
	}
	return ack
}

// waitFold waits, when the request asked (?wait=true), for the site to fold what was written
// with key, and says in ack whether it did. The request is accepted whatever happens now: a
// wait that ends early only says so. It waits holding neither its slot nor its body, so
// waiters never starve reports.
func (h *Handler) waitFold(ctx context.Context, in *incoming, key []byte, ack *schema.Ack) {
	if !in.wait || h.cfg.Folded == nil {
		return
	}
	in.held.release()
	select {
	case h.waiting <- struct{}{}:
		ack.Folded, ack.Message = waitFolded(ctx, h.cfg.FoldWait, func(ctx context.Context) error {
			return h.cfg.Folded(ctx, key)
		})
		<-h.waiting
	default:
		ack.Message = fmt.Sprintf("accepted, answered without waiting for the fold: %d reports are waiting already (--ingest.max-waiting)", cap(h.waiting))
	}
}

// holds are what a request holds (body memory, an in-flight slot), released once.
type holds []func()

func (h *holds) add(release func()) { *h = append(*h, release) }

func (h *holds) release() {
	for i := len(*h) - 1; i >= 0; i-- {
		(*h)[i]()
	}
	*h = nil
}

// waitParam reads the request's ?wait= (true, 1, false, 0; absent: def).
func waitParam(r *http.Request, def bool) (bool, error) {
	switch v := r.URL.Query().Get("wait"); v {
	case "":
		return def, nil
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	default:
		return false, fmt.Errorf("wait must be true or false, not %q", v)
	}
}

// waitFolded waits for folded, at most bound (default 30 s): true once it returned, else
// false and a message saying what was written is safe and will show once folded.
func waitFolded(ctx context.Context, bound time.Duration, folded func(context.Context) error) (bool, string) {
	if bound <= 0 {
		bound = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if err := folded(ctx); err != nil {
		return false, fmt.Sprintf("accepted (the broker acknowledged it) but not folded within %s: reports show it once a projector of the site folds it (%v)", bound, err)
	}
	return true, ""
}

func (h *Handler) failInput(w http.ResponseWriter, err error) {
	var fe *schema.FieldError
	if errors.As(err, &fe) {
		h.fail(w, http.StatusBadRequest, schema.CodeMalformed, fe.Error(), fe.Field)
		return
	}
	h.fail(w, http.StatusBadRequest, schema.CodeMalformed, err.Error(), "body")
}

func (h *Handler) reject(w http.ResponseWriter, rej *rejection) {
	if rej.reason != "" {
		h.rejected.WithLabelValues(rej.reason).Inc()
	}
	if rej.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((rej.retryAfter+time.Second-1)/time.Second)))
	}
	h.fail(w, rej.status, rej.code, rej.message, rej.field)
}

func (h *Handler) fail(w http.ResponseWriter, status int, code, msg, field string) {
	h.count(status, code)
	writeJSON(w, status, schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}

// count counts a report refused with status and code.
func (h *Handler) count(status int, code string) {
	h.requests.WithLabelValues(code).Inc()
	h.answeredAll.Add(1)
	if status == http.StatusServiceUnavailable {
		h.answered503.Add(1)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
