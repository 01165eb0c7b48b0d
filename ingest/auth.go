package ingest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/statepipe/statepipe/schema"
)

// Authentication modes (--ingest.auth).
const (
	AuthRequired = "required" // every report must carry a valid credential and signature
	AuthOptional = "optional" // unsigned reports are accepted; signed ones are verified
	AuthOff      = "off"      // signatures are ignored
)

// AuthConfig sets the trust boundary of a site's ingest.
type AuthConfig struct {
	Mode string
	// SiteKeyFile holds the site's Ed25519 private key (PKCS#8 PEM), shared by the site's
	// ingest nodes: it signs credentials at enrolment and verifies them on every report.
	SiteKeyFile string
	// CredentialTTL is how long a credential is valid (default 30 days); the SDK re-enrols
	// with the same key when it expires.
	CredentialTTL time.Duration
	// EnrollToken, when set, must be presented (Authorization: Bearer) to enrol.
	EnrollToken string
	// MaxClockSkew is how far in the future a message's client time may be (default 1 h).
	MaxClockSkew time.Duration
	// ClientRate and ClientBurst bound each client's reports per second at one ingest node
	// (defaults 5/s, burst 20); above it the node answers 429 with Retry-After.
	ClientRate  float64
	ClientBurst int
}

// RegisterFlags registers the trust-boundary flags under prefix.
func (c *AuthConfig) RegisterFlags(prefix string, fs *flag.FlagSet, defaultMode string) {
	fs.StringVar(&c.Mode, prefix+"auth", defaultMode, "report authentication: required, optional (unsigned accepted, signed verified) or off")
	fs.StringVar(&c.SiteKeyFile, prefix+"site-key", "", "the site's Ed25519 private key (PKCS#8 PEM); created there if missing")
	fs.DurationVar(&c.CredentialTTL, prefix+"credential-ttl", 30*24*time.Hour, "how long an enrolment credential is valid")
	fs.StringVar(&c.EnrollToken, prefix+"enroll-token", "", "bearer token required to enrol (empty: anyone may enrol an unclaimed client id)")
	fs.DurationVar(&c.MaxClockSkew, prefix+"max-clock-skew", time.Hour, "how far in the future a message's client time may be")
	fs.Float64Var(&c.ClientRate, prefix+"client-rate", 5, "reports per second one client may send to one ingest node (429 above)")
	fs.IntVar(&c.ClientBurst, prefix+"client-burst", 20, "burst of reports above client-rate")
}

// Validate reports a config that cannot work.
func (c *AuthConfig) Validate() error {
	switch {
	case c.Mode != AuthRequired && c.Mode != AuthOptional && c.Mode != AuthOff:
		return fmt.Errorf("ingest: auth must be required, optional or off, not %q", c.Mode)
	case c.Mode != AuthOff && c.SiteKeyFile == "":
		return errors.New("ingest: site-key is required unless auth is off")
	case c.CredentialTTL <= 0, c.MaxClockSkew <= 0:
		return errors.New("ingest: credential-ttl and max-clock-skew must be positive")
	case c.ClientRate <= 0 || c.ClientBurst < 1:
		return errors.New("ingest: client-rate must be positive and client-burst at least 1")
	}
	return nil
}

// LoadOrCreateSiteKey reads the site key from path, creating it (mode 0600) if missing.
func LoadOrCreateSiteKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("cannot create site key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read site key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("site key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("site key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("site key %s: not an Ed25519 key", path)
	}
	return key, nil
}

// Registry is a mirror of a compacted topic keyed by client id (internal/kafka.KeySet).
type Registry interface {
	Get(key string) (value []byte, at time.Time, ok bool)
}

// Auth verifies credentials and signatures and paces clients.
type Auth struct {
	cfg     AuthConfig
	key     ed25519.PrivateKey
	revoked Registry // client → revocation; credentials issued before it are refused

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// NewAuth returns the verifier of a site's ingest; key may be nil when auth is off.
func NewAuth(cfg AuthConfig, key ed25519.PrivateKey, revoked Registry) (*Auth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode != AuthOff && key == nil {
		return nil, errors.New("ingest: a site key is required unless auth is off")
	}
	return &Auth{cfg: cfg, key: key, revoked: revoked, buckets: map[string]*bucket{}}, nil
}

// PublicKey returns the site's public key.
func (a *Auth) PublicKey() ed25519.PublicKey {
	if a.key == nil {
		return nil
	}
	return a.key.Public().(ed25519.PublicKey)
}

// rejection is a request refused at the trust boundary.
type rejection struct {
	status         int
	code, reason   string // error code; metric reason
	message, field string
	retryAfter     time.Duration
}

func (r *rejection) Error() string { return r.message }

// authenticate verifies the credential and the body signature; it returns the credential
// (nil for an accepted unsigned report).
func (a *Auth) authenticate(r *http.Request, body []byte, now time.Time) (*schema.Credential, *rejection) {
	if a.cfg.Mode == AuthOff {
		return nil, nil
	}
	token, sig := r.Header.Get(schema.HeaderCredential), r.Header.Get(schema.HeaderSignature)
	if token == "" && sig == "" {
		if a.cfg.Mode == AuthOptional {
			return nil, nil
		}
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "unsigned",
			"reports must be signed: enrol (POST /v1/enroll) and send " + schema.HeaderCredential + " and " + schema.HeaderSignature, schema.HeaderCredential, 0}
	}
	cred, err := schema.ParseCredential(token, a.PublicKey(), now)
	if err != nil {
		reason := "bad_credential"
		if errors.Is(err, schema.ErrCredentialExpired) {
			reason = "expired_credential"
		}
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, reason, err.Error(), schema.HeaderCredential, 0}
	}
	if a.revoked != nil {
		if _, at, ok := a.revoked.Get(cred.Client); ok && cred.Issued <= at.UnixMilli() {
			return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "revoked",
				fmt.Sprintf("client %s was revoked at %s: enrol again", cred.Client, at.UTC().Format(time.RFC3339)), schema.HeaderCredential, 0}
		}
	}
	if !schema.VerifyBody(cred.Key, body, sig) {
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "bad_signature",
			"the body's signature does not verify with the credential's key", schema.HeaderSignature, 0}
	}
	return &cred, nil
}

// authorize checks that an authenticated client reports for itself at its site, within the
// clock-skew limit and its rate.
func (a *Auth) authorize(cred *schema.Credential, rep *schema.Report, now time.Time) *rejection {
	if cred != nil {
		if rep.Client != cred.Client {
			return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
				fmt.Sprintf("credential of client %s cannot report for client %s", cred.Client, rep.Client), "client", 0}
		}
		if rep.Site != cred.Site {
			return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_site",
				fmt.Sprintf("client %s is enrolled at site %s, not %s", cred.Client, cred.Site, rep.Site), "site", 0}
		}
	}
	limit := now.Add(a.cfg.MaxClockSkew).UnixMilli()
	for i := range rep.Messages {
		if rep.Messages[i].Time > limit {
			return &rejection{http.StatusBadRequest, schema.CodeMalformed, "clock_skew",
				fmt.Sprintf("time %s is more than %s ahead of the server's clock", time.UnixMilli(rep.Messages[i].Time).UTC().Format(time.RFC3339), a.cfg.MaxClockSkew),
				fmt.Sprintf("messages[%d].time", i), 0}
		}
	}
	if wait := a.reserve(rep.Client, now); wait > 0 {
		return &rejection{http.StatusTooManyRequests, schema.CodePaced, "rate_limited",
			fmt.Sprintf("client %s exceeds %g reports/s", rep.Client, a.cfg.ClientRate), "client", wait}
	}
	return nil
}

// reserve takes one report from the client's bucket, or says how long until one is free.
func (a *Auth) reserve(client string, now time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.buckets) > 100000 && now.Sub(a.swept) > time.Minute {
		// Forget clients idle long enough for their bucket to be full again.
		idle := time.Duration(float64(a.cfg.ClientBurst)/a.cfg.ClientRate*float64(time.Second)) + time.Second
		for c, b := range a.buckets {
			if now.Sub(b.used) > idle {
				delete(a.buckets, c)
			}
		}
		a.swept = now
	}
	b := a.buckets[client]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(a.cfg.ClientRate), a.cfg.ClientBurst)}
		a.buckets[client] = b
	}
	b.used = now
	if b.lim.AllowN(now, 1) {
		return 0
	}
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return max(wait, time.Millisecond)
}
