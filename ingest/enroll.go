package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"

	"github.com/statepipe/statepipe/schema"
)

// Enroller serves POST /v1/enroll and, for administrators, POST /v1/revoke.
//
// Every decision about a client id is an event in the site's identity log (Identities): a
// node writes the event, reads the log until its own event comes back, and answers with what
// the event did there — so the first enrolment of an id is the only one, whichever nodes take
// competing claims and whenever they restart. A renewal (the holder's key asks again) needs no
// event. New enrolments are admitted at a site-wide rate (and optionally per source address):
// above it the answer is 429 with a jittered Retry-After, field "enroll".
type Enroller struct {
	site       string
	adminToken string // enrols gateways (schema.KindGateway); empty: anyone who reaches the site
	auth       *Auth
	ids        *Identities
	log        Producer // writer on identity.<site>
	logger     *slog.Logger

	rateMu     sync.RWMutex
	newIDs     *rate.Limiter // new enrolments and rotations, site-wide; nil: unlimited
	why        string        // while set (SetRate), why the rate is what it is
	pauseRetry time.Duration // the Retry-After base while the rate is 0
	booked     *calendar     // while set (SetRate), when each refused new client comes back
	perAddr    *addrLimits   // every enrolment request, per source address; nil: unlimited

	admitted, refused atomic.Int64 // new ids admitted and refused by the rate (Demand)

	outcomes *prometheus.CounterVec
}

// EnrollerParams build an Enroller.
type EnrollerParams struct {
	Site string
	// AdminToken is the site's administrator token: a new gateway enrols only with it (empty:
	// open, as the site's other administrative endpoints are).
	AdminToken string
	Auth       *Auth // its site key signs credentials and vouches for identity events
	Identities *Identities
	Log        Producer // writer on identity.<site>
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// NewEnroller returns the enrolment and revocation handlers of a site.
func NewEnroller(p EnrollerParams) *Enroller {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	e := &Enroller{site: p.Site, adminToken: p.AdminToken, auth: p.Auth, ids: p.Identities, log: p.Log, logger: p.Logger,
		outcomes: withLabels(promauto.With(p.Registerer).NewCounterVec(prometheus.CounterOpts{Name: "statepipe_ingest_enrollments_total",
			Help: "Enrolment, rotation and revocation requests by outcome (enrolled, renewed, rotated, revoked, or the refusal)."}, []string{"outcome"}), enrollOutcomes)}
	if c := p.Auth.cfg; c.EnrollRate > 0 {
		e.newIDs = rate.NewLimiter(rate.Limit(c.EnrollRate), max(c.EnrollBurst, 1))
	}
	if c := p.Auth.cfg; c.EnrollAddressRate > 0 {
		e.perAddr = &addrLimits{rate: c.EnrollAddressRate, burst: max(c.EnrollAddressBurst, 1), buckets: map[string]*bucket{}}
	}
	return e
}

// Staleness is how long ago the site's identity log was last read up to its end here.
func (e *Enroller) Staleness(now time.Time) time.Duration { return e.ids.Staleness(now) }

// maxEnrollBody bounds an enrolment request.
const maxEnrollBody = 16 << 10

// ServeEnroll handles POST /v1/enroll.
func (e *Enroller) ServeEnroll(w http.ResponseWriter, r *http.Request) {
	if e.auth == nil || e.auth.key == nil {
		writeError(w, http.StatusNotFound, schema.CodeNotFound, "enrolment is off at this site (--ingest.auth off)", "")
		return
	}
	now := time.Now()
	if wait := e.perAddr.reserve(remoteHost(r), now); wait > 0 {
		e.paced(w, "enroll_address_rate", wait, fmt.Sprintf("enrolments from %s exceed %g/s", remoteHost(r), e.auth.cfg.EnrollAddressRate))
		return
	}
	body, err := readJSONBody(w, r, maxEnrollBody)
	if err != nil {
		e.refuse(w, "malformed", http.StatusBadRequest, schema.CodeMalformed, "cannot read the enrolment: "+err.Error(), "body")
		return
	}
	var req schema.EnrollRequest
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		e.refuse(w, "malformed", http.StatusBadRequest, schema.CodeMalformed, "cannot decode enrolment: "+err.Error(), "body")
		return
	}
	if field, reason := checkEnrollRequest(&req); field != "" {
		e.refuse(w, "malformed", http.StatusBadRequest, schema.CodeMalformed, reason, field)
		return
	}
	gateway := req.Kind == schema.KindGateway
	// An administrator enrols a gateway: with the admin token when the site has one (the
	// enrolment token is then not asked for), else as a client enrols.
	byAdmin := gateway && e.adminToken != "" && bearer(r, e.adminToken)
	if tok := e.auth.cfg.EnrollToken; !(gateway && e.adminToken != "") && tok != "" && !bearer(r, tok) {
		e.refuse(w, "unauthenticated", http.StatusUnauthorized, schema.CodeUnauthenticated, "enrolment needs the site's enrolment token (Authorization: Bearer)", "Authorization")
		return
	}
	if req.Site != e.site {
		e.refuse(w, "wrong_site", http.StatusForbidden, schema.CodeForbidden, fmt.Sprintf("this ingest serves site %s, not %s", e.site, req.Site), "site")
		return
	}
	if stale := e.ids.Staleness(now); stale > e.auth.cfg.IdentityMaxStaleness {
		e.unavailable(w, "identity_stale", staleMessage(stale))
		return
	}
	holder, held := e.ids.Holder(req.Client)
	ev := IdentityEvent{Op: OpEnroll, Key: req.PublicKey, Name: req.Name, Kind: req.Kind, Grant: req.Grant, At: now.UnixMilli()}
	rotation := r.Header.Get(schema.HeaderCredential) != "" || r.Header.Get(schema.HeaderSignature) != ""
	kind, known := e.ids.Kind(req.Client)
	switch {
	case known && kind != req.Kind:
		e.refuse(w, "conflict", http.StatusConflict, schema.CodeConflict, kindMismatch(req.Client, kind), "kind")
		return
	case gateway && !rotation && !(held && bytes.Equal(holder.Key, req.PublicKey)) && e.adminToken != "" && !byAdmin:
		// A gateway reports for every client of the site: only an administrator enrols one.
		// Its renewals (its own key again) and rotations (signed by it) need no token.
		e.refuse(w, "unauthenticated", http.StatusUnauthorized, schema.CodeUnauthenticated, "enrolling a gateway needs the site's administrator token (Authorization: Bearer)", "Authorization")
		return
	}
	switch {
	case held && bytes.Equal(holder.Key, req.PublicKey):
		e.issue(w, req.Client, holder, now, "renewed") // the holder renews: nothing to decide
		return
	case e.ids.Retired(req.Client, req.PublicKey):
		e.refuse(w, "retired_key", http.StatusForbidden, schema.CodeForbidden,
			fmt.Sprintf("this key was revoked or rotated away for client %s and can never enrol again: generate a new key", req.Client), "public_key")
		return
	case rotation:
		from, rej := e.rotationProof(r, body, &req, holder, held, now)
		if rej != nil {
			e.refuse(w, rej.reason, rej.status, rej.code, rej.message, rej.field)
			return
		}
		ev.Op, ev.From = OpRotate, from
	case held:
		e.refuse(w, "conflict", http.StatusConflict, schema.CodeConflict,
			fmt.Sprintf("client %s is enrolled with another key: sign the request with its current credential to rotate, or have an administrator revoke it", req.Client), "client")
		return
	case req.Grant == "" && e.ids.NeedsGrant(req.Client):
		e.refuse(w, "needs_grant", http.StatusForbidden, schema.CodeForbidden,
			fmt.Sprintf("client %s was revoked: enrolling it again needs the one-time grant its revocation answered the administrator (statepipe client enroll --grant)", req.Client), "grant")
		return
	}
	// A gateway the administrator enrolled is not a client of the rollout the rate paces.
	if !byAdmin {
		if wait, msg, booked := e.admit(now); wait > 0 {
			e.refused.Add(1)
			if booked {
				e.retryAt(w, "enroll_rate", wait, msg)
			} else {
				e.paced(w, "enroll_rate", wait, msg)
			}
			return
		}
		e.admitted.Add(1)
	}
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	ev.Nonce = hex.EncodeToString(nonce[:])
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out, err := e.ids.write(ctx, e.log, e.auth.key, req.Client, ev)
	if err != nil {
		e.logger.Warn("enrolment not decided", "client", req.Client, "err", err)
		e.unavailable(w, "identity_unavailable", "the site could not record the enrolment in its identity log in time; retry (a retry is safe)")
		return
	}
	if !out.Won {
		e.refuse(w, "conflict", http.StatusConflict, schema.CodeConflict, out.Reason, "client")
		return
	}
	outcome := "enrolled"
	if ev.Op == OpRotate {
		outcome = "rotated"
	}
	e.logger.Info("client "+outcome, "client", req.Client, "incarnation", out.Holder.Inc)
	e.issue(w, req.Client, out.Holder, now, outcome)
}

// pausedRetry is the Retry-After base while the site admits no new client at all.
const pausedRetry = 10 * time.Second

// admit takes a new id's place at the site's rate: 0 when admitted, else how long to wait
// (booked: the calendar chose it, jitter included) and why.
func (e *Enroller) admit(now time.Time) (wait time.Duration, why string, booked bool) {
	e.rateMu.RLock()
	defer e.rateMu.RUnlock()
	if e.newIDs == nil {
		return 0, "", false
	}
	msg := fmt.Sprintf("this site admits %g new enrolments/s", float64(e.newIDs.Limit()))
	if e.why != "" {
		msg = fmt.Sprintf("this site admits %.3g new enrolments/s now (%s)", float64(e.newIDs.Limit()), e.why)
	}
	res := e.newIDs.ReserveN(now, 1)
	if !res.OK() {
		return e.pauseRetry, "this site admits no new client now (" + e.why + ")", false
	}
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		if e.booked != nil {
			return e.booked.book(now, float64(e.newIDs.Limit())), msg, true
		}
		return min(wait, maxEnrollWait), msg, false
	}
	return 0, "", false
}

// maxEnrollWait bounds the wait a refusal names, whatever the rate.
const maxEnrollWait = time.Hour

// SetRate sets the rate of new enrolments (the pacing controller's; 0: none), with the reason
// refusals quote, replacing --ingest.enroll-rate. The burst is a second's worth. From then on
// each refused client is booked a second to come back in (calendar), so a wave of clients
// returns about as fast as they are admitted.
func (e *Enroller) SetRate(perSecond float64, why string) {
	e.rateMu.Lock()
	defer e.rateMu.Unlock()
	burst := int(perSecond)
	if perSecond > 0 {
		burst = max(burst, 1)
	}
	if e.newIDs == nil || (e.newIDs.Limit() == 0 && perSecond > 0) {
		// A new limiter starts with a full second's worth: a node leaving its start (or a
		// pause) admits at its rate at once rather than from an empty bucket.
		e.newIDs = rate.NewLimiter(rate.Limit(perSecond), burst)
	} else {
		now := time.Now()
		e.newIDs.SetLimitAt(now, rate.Limit(perSecond))
		e.newIDs.SetBurstAt(now, burst)
	}
	e.why, e.pauseRetry = why, pausedRetry
	if e.booked == nil {
		e.booked = newCalendar()
	}
}

// Starting admits no new client until SetRate, answering 429 with a short Retry-After: the
// site has not yet read what its administrators decided (a pause must hold across restarts).
func (e *Enroller) Starting(why string) {
	e.SetRate(0, why)
	e.rateMu.Lock()
	e.pauseRetry = time.Second
	e.rateMu.Unlock()
}

// Demand returns the new ids admitted and refused by the rate since the enroller started, and
// the refused ones told to come back later than now (waiting).
func (e *Enroller) Demand() (admitted, refused, waiting int64) {
	e.rateMu.RLock()
	cal := e.booked
	e.rateMu.RUnlock()
	if cal != nil {
		waiting = cal.waiting(time.Now())
	}
	return e.admitted.Load(), e.refused.Load(), waiting
}

// checkEnrollRequest returns the field and reason of the first problem of an enrolment.
func checkEnrollRequest(req *schema.EnrollRequest) (field, reason string) {
	switch {
	case req.Client == "" || len(req.Client) > 128:
		return "client", "client is required (at most 128 bytes)"
	case !schema.PrintableID(req.Client):
		return "client", "client must be valid UTF-8 without control characters"
	case len(req.Name) > 256 || !schema.PrintableID(req.Name):
		return "name", "name is at most 256 bytes of UTF-8 without control characters"
	case req.Kind != "" && req.Kind != schema.KindGateway:
		return "kind", fmt.Sprintf("kind must be %q or absent (a client), not %q", schema.KindGateway, req.Kind)
	case len(req.PublicKey) != ed25519.PublicKeySize:
		return "public_key", fmt.Sprintf("public_key must be an Ed25519 public key (%d bytes, base64), got %d bytes", ed25519.PublicKeySize, len(req.PublicKey))
	}
	return "", ""
}

// rotationProof checks a rotation request: the holder's valid credential, a signature of the
// exact body by the holder's key, and a time within schema.RotationWindow. It returns the
// key the id is taken from.
func (e *Enroller) rotationProof(r *http.Request, body []byte, req *schema.EnrollRequest, holder Holder, held bool, now time.Time) ([]byte, *rejection) {
	cred, err := schema.ParseCredential(r.Header.Get(schema.HeaderCredential), e.auth.PublicKey(), now)
	switch {
	case err != nil:
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "bad_credential", "rotation: " + err.Error(), schema.HeaderCredential, 0}
	case cred.Client != req.Client || cred.Site != e.site:
		return nil, &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
			fmt.Sprintf("rotation: the credential is client %s's at site %s, not %s's at %s", cred.Client, cred.Site, req.Client, e.site), "client", 0}
	case !held || !bytes.Equal(holder.Key, cred.Key):
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "credential_revoked",
			fmt.Sprintf("rotation: the credential's key no longer holds client %s (revoked or rotated away)", req.Client), schema.HeaderCredential, 0}
	case !schema.VerifyBody(cred.Key, body, r.Header.Get(schema.HeaderSignature)):
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "bad_signature",
			"rotation: " + schema.HeaderSignature + " must be the current key's signature of the exact request body", schema.HeaderSignature, 0}
	case req.Time == 0 || now.Sub(time.UnixMilli(req.Time)).Abs() > schema.RotationWindow:
		return nil, &rejection{http.StatusBadRequest, schema.CodeMalformed, "clock_skew",
			fmt.Sprintf("rotation: time_ms must be within %s of the site's clock (%s)", schema.RotationWindow, now.UTC().Format(time.RFC3339)), "time_ms", 0}
	}
	return cred.Key, nil
}

// issue answers an enrolment with a credential of holder.
func (e *Enroller) issue(w http.ResponseWriter, client string, holder Holder, now time.Time, outcome string) {
	exp := now.Add(e.auth.cfg.CredentialTTL)
	var id [8]byte
	_, _ = rand.Read(id[:])
	token, err := schema.SignCredential(schema.Credential{ID: hex.EncodeToString(id[:]), Client: client, Name: holder.Name, Site: e.site,
		Key: holder.Key, Inc: holder.Inc, Kind: holder.Kind, Issued: now.UnixMilli(), Expires: exp.UnixMilli()}, e.auth.key)
	if err != nil {
		writeError(w, http.StatusInternalServerError, schema.CodeInternal, "cannot sign the credential", "")
		return
	}
	e.outcomes.WithLabelValues(outcome).Inc()
	writeJSON(w, http.StatusOK, schema.EnrollResponse{Credential: token, Expires: time.UnixMilli(exp.UnixMilli()).UTC(),
		SerialBase: schema.SerialBase(holder.Inc)})
}

func (e *Enroller) refuse(w http.ResponseWriter, outcome string, status int, code, msg, field string) {
	e.outcomes.WithLabelValues(outcome).Inc()
	writeError(w, status, code, msg, field)
}

// paced answers 429 with a Retry-After of the wait plus up to as much again at random, so
// refused clients do not all come back at the same second.
func (e *Enroller) paced(w http.ResponseWriter, outcome string, wait time.Duration, msg string) {
	wait += time.Duration(mrand.Int64N(int64(wait) + 1))
	e.retryAt(w, outcome, wait, msg)
}

// retryAt answers 429 with a Retry-After of wait, rounded up to whole seconds.
func (e *Enroller) retryAt(w http.ResponseWriter, outcome string, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	e.refuse(w, outcome, http.StatusTooManyRequests, schema.CodePaced, msg+"; retry after the Retry-After seconds", "enroll")
}

func (e *Enroller) unavailable(w http.ResponseWriter, outcome, msg string) {
	w.Header().Set("Retry-After", "2")
	e.refuse(w, outcome, http.StatusServiceUnavailable, schema.CodeUnavailable, msg, "")
}

func staleMessage(stale time.Duration) string {
	if stale > 24*time.Hour {
		return "this ingest node has not read the site's identity log up to date yet (starting, or the broker is unreachable); retry"
	}
	return fmt.Sprintf("this ingest node last read the site's identity log up to date %s ago; retry", stale.Round(time.Millisecond))
}

// RevokeRequest is the body of POST /v1/revoke.
type RevokeRequest struct {
	Client string `json:"client"`
}

// RevokeAnswer answers POST /v1/revoke.
type RevokeAnswer struct {
	Client    string    `json:"client"`
	RevokedAt time.Time `json:"revoked_at"`
	// Grant is the one-time code the machine enrols the id again with (EnrollRequest.Grant);
	// a later revocation replaces an unused one.
	Grant string `json:"grant"`
	// Kind is schema.KindGateway when the id is a gateway's (it enrols again as one).
	Kind string `json:"kind,omitempty"`
}

// ServeRevoke handles POST /v1/revoke: the key that holds the client id is retired (every
// credential of it is refused from then on, and it can never enrol again), and the id waits
// for an enrolment that carries the one-time grant this answers — given to the machine's
// owner, not to whoever races for the freed id. Revoking an id nobody holds issues a new grant.
// Guard it with RequireBearer.
func (e *Enroller) ServeRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	body, err := readJSONBody(w, r, 4<<10)
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err != nil || d.Decode(&req) != nil || req.Client == "" || len(req.Client) > 128 || !schema.PrintableID(req.Client) {
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, "want {\"client\": ID} (at most 128 bytes of UTF-8)", "client")
		return
	}
	now := time.Now()
	if stale := e.ids.Staleness(now); stale > e.auth.cfg.IdentityMaxStaleness {
		e.unavailable(w, "identity_stale", staleMessage(stale))
		return
	}
	var nonce, code [16]byte
	_, _ = rand.Read(nonce[:])
	_, _ = rand.Read(code[:])
	grant := hex.EncodeToString(code[:])
	ev := IdentityEvent{Op: OpRevoke, Grant: hex.EncodeToString(grantHash(grant)), Nonce: hex.EncodeToString(nonce[:]), At: now.UnixMilli()}
	if h, held := e.ids.Holder(req.Client); held {
		ev.Key = h.Key // the revocation retires this key, and only while it holds the id
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out, err := e.ids.write(ctx, e.log, e.auth.key, req.Client, ev)
	if err != nil {
		e.logger.Warn("revocation not confirmed", "client", req.Client, "err", err)
		e.unavailable(w, "identity_unavailable", "the revocation was not confirmed by the site's identity log in time; retry (a retry is safe)")
		return
	}
	if !out.Won {
		e.refuse(w, "conflict", http.StatusConflict, schema.CodeConflict, out.Reason, "client")
		return
	}
	e.outcomes.WithLabelValues("revoked").Inc()
	e.logger.Info("client revoked", "client", req.Client)
	kind, _ := e.ids.Kind(req.Client)
	writeJSON(w, http.StatusOK, RevokeAnswer{Client: req.Client, RevokedAt: now.UTC(), Grant: grant, Kind: kind})
}

// RequireBearer guards an administrative handler: with a token set, requests must carry
// Authorization: Bearer <token> (401 otherwise); an empty token leaves it open.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r, token) {
			writeError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, "this endpoint needs the administrator token (Authorization: Bearer)", "Authorization")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer reports whether r carries Authorization: Bearer token (the scheme is
// case-insensitive, RFC 9110 §11.1).
func bearer(r *http.Request, token string) bool {
	return BearerIs(r, token)
}

// BearerIs reports whether r carries Authorization: Bearer token; the scheme name is matched
// case-insensitively (RFC 9110 §11.1), the token exactly and in constant time.
func BearerIs(r *http.Request, token string) bool {
	scheme, got, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}

// readJSONBody reads a JSON request body of at most limit bytes and refuses one that is not
// valid UTF-8: encoding/json would replace such bytes with U+FFFD, and the site would act on
// another id than the one it was sent.
func readJSONBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("cannot read the body (at most %d bytes): %w", limit, err)
	}
	if !utf8.Valid(body) {
		return nil, errors.New("the body is not valid UTF-8")
	}
	return body, nil
}

// remoteHost is the address a request came from (the TCP peer; a proxy's X-Forwarded-For is
// not trusted).
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// addrLimits paces requests per source address.
type addrLimits struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

// reserve takes one request from addr's bucket, or says how long until one is free.
func (a *addrLimits) reserve(addr string, now time.Time) time.Duration {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return takeToken(a.buckets, &a.swept, addr, a.rate, a.burst, now)
}

// takeToken takes one token from key's bucket of buckets (rate per second, burst), creating
// it, and forgets buckets idle long enough to be full again when the map grows large. It
// returns 0, or how long until a token is free. The caller holds the map's lock.
func takeToken(buckets map[string]*bucket, swept *time.Time, key string, perSecond float64, burst int, now time.Time) time.Duration {
	if len(buckets) > 100000 && now.Sub(*swept) > time.Minute {
		idle := time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Second
		for k, b := range buckets {
			if now.Sub(b.used) > idle {
				delete(buckets, k)
			}
		}
		*swept = now
	}
	b := buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
		buckets[key] = b
	}
	b.used = now
	if b.lim.AllowN(now, 1) {
		return 0
	}
	res := b.lim.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	res.CancelAt(now)
	return max(wait, time.Millisecond)
}
