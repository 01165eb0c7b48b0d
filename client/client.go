// Package client is the Go SDK that agents and the load harness use to report state: it keeps
// the per-client serial, builds and encodes reports (msgpack), posts them and retries what is
// safe to retry (503 and 429 honouring Retry-After, and network errors) with capped
// exponential back-off. A retried report carries the same serials, so the server folds it once.
//
// It answers the site's resync requests through Config.OnResync. Enroll claims the client id
// at the site with a new Ed25519 key (or Config.Identity's), after which every report carries
// the site-signed credential and the client's signature over the body; an expired or revoked
// credential is renewed by enrolling again with the same key. A site admitting no more new
// clients (a rollout wave) answers enrolments 429 with a Retry-After: Enroll waits it out for
// up to Config.EnrollPatience (1 h) or as long as its context allows.
//
// The site paces reporting: each acknowledgement says how long the client should batch its
// state messages before its next report (Ack.ReportInterval, ConfigMgr's state-message
// reporting interval), and which phased deployments are released to it (Ack.Released). An
// agent queues its state messages and lets Run send them as one report per interval; Report
// stays the immediate send for what is urgent:
//
//	c, err := client.Enroll(ctx, client.Config{URL: url, Site: "P01", ClientID: id,
//		OnReleased: func(ids []string) { /* start enforcing what was released */ }})
//	go c.Run(ctx) // a report every ReportInterval (±10 %), and a last one when ctx ends
//	c.Queue(schema.StateMessage{TopicType: schema.TopicUpdateCompliance, TopicID: kb, State: 3})
//	if c.IsReleased(deployment) { /* enforce it */ }
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Config says where and as whom to report.
type Config struct {
	URL      string // base URL of the site's ingest, e.g. http://127.0.0.1:8080
	Site     string
	ClientID string
	// NextSerial is the first serial to use (default 1). An agent persists LastSerial across
	// restarts and passes LastSerial+1 here: serials must never repeat — the site refuses a
	// serial it accepted before with other content (409). A signed client's serials lie above
	// its enrolment's serial base (Identity.SerialBase): the SDK moves up to it whenever an
	// enrolment or a rotation answers one above the next serial.
	NextSerial uint64
	// HTTPClient defaults to a client with a 30 s timeout (2 minutes with WaitFolded).
	HTTPClient *http.Client
	// MaxAttempts bounds tries per report (default 8); BackoffMin/Max bound the wait between
	// them when the server gives no Retry-After (defaults 100 ms and 10 s).
	MaxAttempts int
	BackoffMin  time.Duration
	BackoffMax  time.Duration
	// OnResync answers the site's resync request (folding rule 5): it returns the client's
	// whole current state, which the SDK sends as one report, full for every type in
	// ResyncTypes, led by a 700 resync message. Nil ignores requests.
	OnResync func(ctx context.Context) ([]schema.StateMessage, error)
	// ResyncTypes are the topic types a resync answer replaces (default every keyed type).
	ResyncTypes []schema.TopicType
	// Identity signs every report (LoadIdentity, or Enroll creates one); nil sends unsigned.
	Identity *Identity
	// Name is the machine's name, sent at enrolment.
	Name string
	// EnrollToken is the bearer token an enrolment sends: the site's enrolment token, if it
	// requires one; for a new gateway, the site's administrator token.
	EnrollToken string
	// Kind is schema.KindGateway to enrol a gateway, which relays ConfigMgr documents for the
	// clients of its site (Relay); "" a client.
	Kind string
	// EnrollGrant is the one-time code an administrator's revocation of this client id
	// answered: a revoked id enrols again only with it.
	EnrollGrant string
	// EnrollPatience is how long Enroll, and the re-enrolment that renews an expired
	// credential, wait out the site's pacing: a site that admits no more new clients (a
	// rollout wave can last minutes) answers 429 with a jittered Retry-After, which the SDK
	// honours again and again, without counting it against MaxAttempts, until EnrollPatience
	// has passed or the context is done (default 1 h; negative: a 429 counts as any other
	// temporary error). Other temporary errors keep the MaxAttempts rule; rotations too.
	EnrollPatience time.Duration
	// OnPaced, if set, is called on each 429 answer to an enrolment that the SDK waits out,
	// with the wait (the Retry-After, or a back-off when the site gave none), before waiting.
	// It runs on the enrolling goroutine: it must not block or report.
	OnPaced func(wait time.Duration)
	// ReportInterval is how long Run batches queued state messages between reports (default
	// 15 min) until the site sets its own (Ack.ReportInterval), and again whenever the site
	// answers 0 (it does not pace).
	ReportInterval time.Duration
	// OnReleased, if set, is called with the new set (sorted) each time the phased
	// deployments the site lists as released to this client change (Ack.Released). It is
	// called after the call that brought the acknowledgement has let go of the client, so it
	// may report; calls do not overlap, and a burst of changes may be told as its last set.
	OnReleased func(released []string)
	// OnFlushError, if set, hears of each of Run's flushes that failed: the batch stays queued
	// and goes with the next.
	OnFlushError func(error)
	// WaitFolded asks the site to answer each report once it folded it (?wait=true), so a
	// report read right after shows it: for scripts and tests, not for agents (it holds the
	// request for as long as the projector takes; the answer's Folded says whether it did).
	WaitFolded bool
}

// Client reports for one managed machine. It is safe for concurrent use; reports are sent one
// at a time so serials reach the server in order.
type Client struct {
	cfg  Config
	http *http.Client

	mu       sync.Mutex // held while a report is sent: reports go one at a time
	serialMu sync.Mutex // guards serial
	serial   uint64     // last serial assigned

	idMu sync.Mutex
	id   *Identity

	qMu    sync.Mutex
	queue  []schema.StateMessage // queued by Queue, not numbered yet
	unsent []*schema.Report      // numbered batches a failed flush kept: they go first, as they are

	paceMu       sync.Mutex
	interval     time.Duration // the site's report interval (0: Config.ReportInterval)
	released     []string      // sorted
	relVersion   uint64        // changes of released
	relDelivered uint64        // the change OnReleased was last told
	delivering   bool          // OnReleased is being called
	paceChanged  chan struct{} // a new interval, for Run
}

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.Site == "" || cfg.ClientID == "" {
		return nil, errors.New("client: URL, Site and ClientID are required")
	}
	if cfg.NextSerial == 0 {
		cfg.NextSerial = 1
	}
	if cfg.HTTPClient == nil {
		timeout := 30 * time.Second
		if cfg.WaitFolded {
			// The site holds a waiting report up to --ingest.fold-wait (30 s by default) after
			// accepting it: a timeout then would send again what was accepted.
			timeout = 2 * time.Minute
		}
		cfg.HTTPClient = &http.Client{Timeout: timeout}
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.EnrollPatience == 0 {
		cfg.EnrollPatience = time.Hour
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 15 * time.Minute
	}
	if len(cfg.ResyncTypes) == 0 {
		cfg.ResyncTypes = []schema.TopicType{schema.TopicUpdateCompliance, schema.TopicScan, schema.TopicUpdateEnforcement,
			schema.TopicDeploymentCompliance, schema.TopicDeploymentEnforcement, schema.TopicDeploymentEvaluation}
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.Identity != nil && (cfg.Identity.Client != cfg.ClientID || cfg.Identity.Site != cfg.Site) {
		return nil, fmt.Errorf("client: identity is for client %s at site %s, not %s at %s", cfg.Identity.Client, cfg.Identity.Site, cfg.ClientID, cfg.Site)
	}
	c := &Client{cfg: cfg, http: cfg.HTTPClient, serial: cfg.NextSerial - 1, id: cfg.Identity,
		paceChanged: make(chan struct{}, 1)}
	if cfg.Identity != nil {
		c.serial = max(c.serial, cfg.Identity.SerialBase)
	}
	return c, nil
}

// LastSerial returns the last serial assigned; persist it to survive restarts.
func (c *Client) LastSerial() uint64 {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	return c.serial
}

// Report assigns the next serials to msgs (in order), and sends them as one report at once:
// the immediate send, for what is urgent (Queue batches the rest). With full, the report is
// full for every topic type it carries: it replaces the client's key set of those types.
// Messages queued before are sent first, in reports of their own, so serials follow the
// order of events; when they cannot be sent, neither is the report. When the site answers
// with a resync request and OnResync is set, Report sends the full report OnResync returns
// before it returns.
func (c *Client) Report(ctx context.Context, full bool, msgs ...schema.StateMessage) error {
	defer c.notifyReleased()
	c.mu.Lock()
	defer c.mu.Unlock()
	resync, dropped, err := c.flushLocked(ctx)
	if err != nil {
		return errors.Join(dropped, fmt.Errorf("cannot send the messages queued before the report: %w", err))
	}
	rep := &schema.Report{V: schema.Version, Client: c.cfg.ClientID, Site: c.cfg.Site, Messages: msgs}
	c.number(msgs)
	if full {
		seen := map[schema.TopicType]bool{}
		for _, m := range msgs {
			if m.TopicType.Keyed() && !seen[m.TopicType] {
				seen[m.TopicType] = true
				rep.FullTypes = append(rep.FullTypes, m.TopicType)
			}
		}
	}
	ack, err := c.send(ctx, rep)
	if err != nil {
		return errors.Join(dropped, err)
	}
	if (ack.Resync || resync) && c.cfg.OnResync != nil {
		err = c.resync(ctx)
	}
	return errors.Join(dropped, err)
}

// number assigns the next serials, and the current time to messages without one.
func (c *Client) number(msgs []schema.StateMessage) {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	now := time.Now().UnixMilli()
	for i := range msgs {
		c.serial++
		msgs[i].Serial = c.serial
		if msgs[i].Time == 0 {
			msgs[i].Time = now
		}
	}
}

// renumber gives msgs the next serials, in the order of their current ones.
func (c *Client) renumber(msgs []schema.StateMessage) {
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return msgs[order[a]].Serial < msgs[order[b]].Serial })
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	for _, i := range order {
		c.serial++
		msgs[i].Serial = c.serial
	}
}

// below reports whether some serial of rep is not above the enrolment's serial base.
func (c *Client) below(rep *schema.Report) bool {
	base := c.SerialBase()
	for i := range rep.Messages {
		if rep.Messages[i].Serial <= base {
			return true
		}
	}
	return false
}

// resync answers a resync request with a full report of the client's whole state. Queued
// messages go first: OnResync's state is at least as new as they are.
func (c *Client) resync(ctx context.Context) error {
	_, dropped, err := c.flushLocked(ctx)
	if err != nil {
		return errors.Join(dropped, fmt.Errorf("cannot send the queued messages ahead of a resync answer: %w", err))
	}
	state, err := c.cfg.OnResync(ctx)
	if err != nil {
		return errors.Join(dropped, fmt.Errorf("cannot collect state to answer a resync request: %w", err))
	}
	msgs := append([]schema.StateMessage{{TopicType: schema.TopicResync}}, state...)
	c.number(msgs)
	rep := &schema.Report{V: schema.Version, Client: c.cfg.ClientID, Site: c.cfg.Site,
		FullTypes: c.cfg.ResyncTypes, Messages: msgs}
	_, err = c.send(ctx, rep)
	return errors.Join(dropped, err)
}

// Send posts a report exactly as given (serials included), retrying what is safe to retry.
// It does not send queued messages.
func (c *Client) Send(ctx context.Context, rep *schema.Report) (*schema.Ack, error) {
	defer c.notifyReleased()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.send(ctx, rep)
}

// APIError is an error answer from the server.
type APIError struct {
	Status     int
	RetryAfter time.Duration
	schema.ErrorDetail
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	return s
}

// ForeignCredential reports whether the site refused the credential as not signed by its key:
// the identity was enrolled at another site, or this site was reset (or its key replaced)
// since. Retrying cannot help; enrolling again can.
func (e *APIError) ForeignCredential() bool {
	return e.Status == http.StatusUnauthorized && e.Field == schema.HeaderCredential &&
		strings.Contains(e.Message, schema.ErrCredentialSignature.Error())
}

// Temporary reports whether retrying later may succeed: 429 and 503 from statepipe, and
// 500, 502 and 504 from whatever stands in between. Retrying is safe because a retried report
// carries the same serials: the site folds it once.
func (e *APIError) Temporary() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *Client) send(ctx context.Context, rep *schema.Report) (*schema.Ack, error) {
	var body bytes.Buffer
	if err := schema.EncodeReport(&body, rep); err != nil {
		return nil, fmt.Errorf("cannot encode report: %w", err)
	}
	renewed := false
	var ack *schema.Ack
	err := c.retry(ctx, func() (time.Duration, error) {
		a, wait, err := c.post(ctx, body.Bytes())
		if err == nil {
			ack = a
			return 0, nil
		}
		if !renewed && c.renewable(err) {
			renewed = true
			if rerr := c.enroll(ctx); rerr != nil {
				return 0, permanent{fmt.Errorf("%w (and enrolling again failed: %v)", err, rerr)}
			}
			if c.below(rep) {
				// The new enrolment's serials start above this report's (a new incarnation):
				// the report was refused, so it may take new serials.
				c.renumber(rep.Messages)
				body.Reset()
				if err := schema.EncodeReport(&body, rep); err != nil {
					return 0, permanent{fmt.Errorf("cannot encode report: %w", err)}
				}
			}
			return 0, retryNow{err}
		}
		return wait, err
	})
	if err != nil {
		return nil, fmt.Errorf("cannot send report: %w", err)
	}
	c.observe(ack)
	return ack, nil
}

// permanent marks an error not to retry; retryNow one to retry at once (not counted as a
// failure to back off from).
type (
	permanent struct{ error }
	retryNow  struct{ error }
)

func (p permanent) Unwrap() error { return p.error }
func (r retryNow) Unwrap() error  { return r.error }

// retry calls try until it succeeds, fails for good (an APIError that is not Temporary, or a
// permanent error) or MaxAttempts tries were made, waiting between tries the server's
// Retry-After (try's wait) or a capped exponential back-off with full jitter, so a fleet that
// failed together does not retry together. Retrying a report is safe: it carries the same
// serials, and the site folds it once.
func (c *Client) retry(ctx context.Context, try func() (wait time.Duration, err error)) error {
	return c.retryN(ctx, c.cfg.MaxAttempts, 0, try)
}

// retryN is retry with at most tries tries. With patience > 0 (an enrolment), 429 answers —
// the site pacing admissions — are not counted as tries: each is waited out (OnPaced hears of
// it) until patience has passed since the first try.
func (c *Client) retryN(ctx context.Context, tries int, patience time.Duration, try func() (wait time.Duration, err error)) error {
	backoff := c.cfg.BackoffMin
	deadline := time.Now().Add(patience)
	var lastErr error
	for attempt := 1; ; {
		wait, err := try()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		var now retryNow
		if errors.As(err, &now) {
			lastErr = now.error
			if attempt++; attempt > tries {
				break
			}
			continue
		}
		lastErr = err
		var apiErr *APIError
		if errors.As(err, &apiErr) && !apiErr.Temporary() {
			return err
		}
		if wait == 0 {
			wait = time.Duration(rand.Int64N(int64(backoff)) + 1)
			backoff = min(backoff*2, c.cfg.BackoffMax)
		}
		if patience > 0 && apiErr != nil && apiErr.Status == http.StatusTooManyRequests {
			if time.Now().Add(wait).After(deadline) {
				return fmt.Errorf("paced by the site for longer than %s: %w", patience, err)
			}
			if c.cfg.OnPaced != nil {
				c.cfg.OnPaced(wait)
			}
		} else if attempt++; attempt > tries {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting to retry: %w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(wait):
		}
	}
	return fmt.Errorf("%d attempts failed: %w", tries, lastErr)
}

// post sends once; wait is the server's Retry-After when it gave one.
func (c *Client) post(ctx context.Context, body []byte) (*schema.Ack, time.Duration, error) {
	u := c.cfg.URL + "/v1/reports"
	if c.cfg.WaitFolded {
		u += "?wait=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", schema.MediaMsgpack)
	if cred, sig := c.sign(body); cred != "" {
		req.Header.Set(schema.HeaderCredential, cred)
		req.Header.Set(schema.HeaderSignature, sig)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode == http.StatusOK {
		var ack schema.Ack
		if err := json.Unmarshal(raw, &ack); err != nil {
			return nil, 0, fmt.Errorf("cannot decode acknowledgement: %w", err)
		}
		return &ack, 0, nil
	}
	apiErr := apiError(resp, raw)
	return nil, apiErr.RetryAfter, apiErr
}

// apiError reads an error answer.
func apiError(resp *http.Response, raw []byte) *APIError {
	apiErr := &APIError{Status: resp.StatusCode}
	var eb schema.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
		apiErr.ErrorDetail = eb.Error
	} else {
		apiErr.Code, apiErr.Message = "http", strings.TrimSpace(string(raw))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		apiErr.RetryAfter = time.Duration(s) * time.Second
	}
	return apiErr
}
