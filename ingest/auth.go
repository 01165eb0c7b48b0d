package ingest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
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
	// SiteKeyCreate creates SiteKeyFile when it is missing (statepipe run; a server role must
	// be given the site's key: one created by a mistyped path would vouch for records nothing
	// else accepts).
	SiteKeyCreate bool
	// PreviousKeyFiles are the site keys SiteKeyFile replaced (public or private PEM): what
	// they vouched for — identity events, records not folded yet — stays valid.
	PreviousKeyFiles []string
	// CredentialTTL is how long a credential is valid (default 30 days); the SDK re-enrols
	// with the same key when it expires.
	CredentialTTL time.Duration
	// EnrollToken, when set, must be presented (Authorization: Bearer) to enrol.
	EnrollToken string
	// EnrollRate and EnrollBurst bound new enrolments (and rotations) at one ingest node, per
	// second (default 100/s, burst 1,000; 0: unlimited): a new client's first full scan is the
	// expensive report, and a flood of fake ids must not fill the registry. Renewals are not
	// counted. EnrollAddressRate/Burst bound every enrolment request per source address
	// (default off: estates enrol through proxies and NAT).
	EnrollRate         float64
	EnrollBurst        int
	EnrollAddressRate  float64
	EnrollAddressBurst int
	// IdentityMaxStaleness is how long the node may go without having read the identity log up
	// to its end before it refuses signed reports and enrolments (503): the bound on how late a
	// rotation or a revocation reaches it (default 10 s).
	IdentityMaxStaleness time.Duration
	// MaxClockSkew is how far in the future a message's client time may be (default 1 h).
	MaxClockSkew time.Duration
	// MaxMessageAge is how far in the past a message's client time may be (default 5 years).
	MaxMessageAge time.Duration
	// ClientRate and ClientBurst bound each client's reports per second at one ingest node
	// (defaults 5/s, burst 20); above it the node answers 429 with Retry-After.
	ClientRate  float64
	ClientBurst int
}

// DefaultAuthConfig returns the trust boundary's defaults (the flags' defaults) for mode
// (AuthRequired for the server roles, AuthOptional for statepipe run): a site key is created
// when missing only with AuthOptional. SiteKeyFile and the tokens are the caller's.
func DefaultAuthConfig(mode string) AuthConfig {
	return AuthConfig{
		Mode:                 mode,
		SiteKeyCreate:        mode == AuthOptional,
		CredentialTTL:        30 * 24 * time.Hour,
		EnrollRate:           100,
		EnrollBurst:          1000,
		EnrollAddressBurst:   100,
		IdentityMaxStaleness: 10 * time.Second,
		MaxClockSkew:         time.Hour,
		MaxMessageAge:        5 * 365 * 24 * time.Hour,
		ClientRate:           5,
		ClientBurst:          20,
	}
}

// RegisterFlags registers the trust-boundary flags under prefix, with DefaultAuthConfig(defaultMode)'s
// values as defaults (and --ingest.enroll-token from $STATEPIPE_ENROLL_TOKEN).
func (c *AuthConfig) RegisterFlags(prefix string, fs *flag.FlagSet, defaultMode string) {
	d := DefaultAuthConfig(defaultMode)
	fs.StringVar(&c.Mode, prefix+"auth", d.Mode, "report authentication: required, optional (unsigned accepted, signed verified) or off")
	fs.StringVar(&c.SiteKeyFile, prefix+"site-key", d.SiteKeyFile, "the site's Ed25519 private key (PKCS#8 PEM); the projector may be given its public half")
	fs.BoolVar(&c.SiteKeyCreate, prefix+"site-key-create", d.SiteKeyCreate, "create --ingest.site-key when the file is missing (default: only statepipe run; a server role refuses to start without its site's key)")
	fs.Func(prefix+"site-key-previous", "a site key --ingest.site-key replaced (PEM, public or private; repeat or comma-separate): what it vouched for stays valid", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				c.PreviousKeyFiles = append(c.PreviousKeyFiles, f)
			}
		}
		return nil
	})
	fs.DurationVar(&c.CredentialTTL, prefix+"credential-ttl", d.CredentialTTL, "how long an enrolment credential is valid")
	fs.StringVar(&c.EnrollToken, prefix+"enroll-token", os.Getenv("STATEPIPE_ENROLL_TOKEN"), "bearer token required to enrol (default $STATEPIPE_ENROLL_TOKEN; empty: anyone who reaches ingest may enrol an unclaimed client id)")
	fs.Float64Var(&c.EnrollRate, prefix+"enroll-rate", d.EnrollRate, "new enrolments per second one ingest node admits (429 with Retry-After above; 0: unlimited); renewals are not counted")
	fs.IntVar(&c.EnrollBurst, prefix+"enroll-burst", d.EnrollBurst, "burst of new enrolments above enroll-rate")
	fs.Float64Var(&c.EnrollAddressRate, prefix+"enroll-address-rate", d.EnrollAddressRate, "enrolment requests per second from one source address (0: unlimited; estates often enrol through proxies)")
	fs.IntVar(&c.EnrollAddressBurst, prefix+"enroll-address-burst", d.EnrollAddressBurst, "burst of enrolment requests above enroll-address-rate")
	fs.DurationVar(&c.IdentityMaxStaleness, prefix+"identity-max-staleness", d.IdentityMaxStaleness, "refuse signed reports and enrolments (503) when the identity log was last read to its end longer ago: the bound on how late a revocation or rotation takes effect at this node")
	fs.DurationVar(&c.MaxClockSkew, prefix+"max-clock-skew", d.MaxClockSkew, "how far in the future a message's client time may be")
	fs.DurationVar(&c.MaxMessageAge, prefix+"max-message-age", d.MaxMessageAge, "how far in the past a message's client time may be (a clock further back is wrong)")
	fs.Float64Var(&c.ClientRate, prefix+"client-rate", d.ClientRate, "reports per second one client may send to one ingest node (429 above)")
	fs.IntVar(&c.ClientBurst, prefix+"client-burst", d.ClientBurst, "burst of reports above client-rate")
}

// Validate reports a config that cannot work.
func (c *AuthConfig) Validate() error {
	switch {
	case c.Mode != AuthRequired && c.Mode != AuthOptional && c.Mode != AuthOff:
		return fmt.Errorf("ingest: auth must be required, optional or off, not %q", c.Mode)
	case c.Mode != AuthOff && c.SiteKeyFile == "":
		return errors.New("ingest: site-key is required unless auth is off")
	case c.CredentialTTL <= 0, c.MaxClockSkew <= 0, c.MaxMessageAge <= 0, c.IdentityMaxStaleness <= 0:
		return errors.New("ingest: credential-ttl, max-clock-skew, max-message-age and identity-max-staleness must be positive")
	case c.ClientRate <= 0 || c.ClientBurst < 1:
		return errors.New("ingest: client-rate must be positive and client-burst at least 1")
	case c.EnrollRate < 0 || c.EnrollAddressRate < 0:
		return fmt.Errorf("ingest: enroll-rate (%g) and enroll-address-rate (%g) must not be negative", c.EnrollRate, c.EnrollAddressRate)
	}
	return nil
}

// LoadSiteKey reads the site key from path, creating it (mode 0600) if missing when create is
// set.
func LoadSiteKey(path string, create bool) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !create {
		return nil, fmt.Errorf("cannot read the site key %s: it does not exist (give the site's key, or --ingest.site-key-create to make a new site's)", path)
	}
	return LoadOrCreateSiteKey(path)
}

// PublicKeys returns the site's public keys: the current one's and those of PreviousKeyFiles.
func (c *AuthConfig) PublicKeys(current ed25519.PublicKey) ([]ed25519.PublicKey, error) {
	keys := []ed25519.PublicKey{current}
	for _, f := range c.PreviousKeyFiles {
		k, err := LoadSitePublicKey(f)
		if err != nil {
			return nil, fmt.Errorf("--ingest.site-key-previous: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, nil
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

// LoadSitePublicKey reads the site's public key from path: a PKIX "PUBLIC KEY" PEM (e.g.
// `openssl pkey -in site.key -pubout`) or the site key itself (PKCS#8 "PRIVATE KEY", whose
// public half is used). Unlike LoadOrCreateSiteKey it never creates one: the roles that only
// check what ingest vouched for (the projector) must use the key ingest signs with.
func LoadSitePublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the site key %s: %w", path, err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("site key %s: no PEM block", path)
	}
	var k any
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("site key %s: PEM block %q, want PUBLIC KEY or PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("site key %s: %w", path, err)
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return k, nil
	case ed25519.PrivateKey:
		return k.Public().(ed25519.PublicKey), nil
	}
	return nil, fmt.Errorf("site key %s: not an Ed25519 key", path)
}

// Auth verifies credentials and signatures and paces clients.
type Auth struct {
	cfg AuthConfig
	key ed25519.PrivateKey
	ids *Identities // who holds each client id now; a credential of any other key is refused

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time

	creds credentialCache
}

// credentialCache keeps the credentials that verified, by the SHA-256 of the site key and the
// token: a client presents the same token with every report until it renews, and checking
// the site's signature and decoding it each time was ~2.5 % of a storm's CPU. A hit still
// checks the expiry (and the caller revocation and rotation); the cache is emptied when full.
type credentialCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]schema.Credential
}

// maxCachedCredentials bounds the cache (about 200 bytes each): a site's clients, twice over.
const maxCachedCredentials = 1 << 18

// parse returns ParseCredential's answer for token, from the cache when it verified before.
func (c *credentialCache) parse(token string, site ed25519.PublicKey, now time.Time) (schema.Credential, error) {
	h := sha256.New()
	h.Write(site)
	h.Write([]byte(token))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	c.mu.Lock()
	cred, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		if now.UnixMilli() >= cred.Expires {
			return schema.ParseCredential(token, site, now) // its own error
		}
		return cred, nil
	}
	cred, err := schema.ParseCredential(token, site, now)
	if err != nil {
		return cred, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedCredentials {
		c.m = map[[sha256.Size]byte]schema.Credential{}
	}
	c.m[k] = cred
	c.mu.Unlock()
	return cred, nil
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// NewAuth returns the verifier of a site's ingest; key and ids may be nil when auth is off.
func NewAuth(cfg AuthConfig, key ed25519.PrivateKey, ids *Identities) (*Auth, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode != AuthOff && (key == nil || ids == nil) {
		return nil, errors.New("ingest: a site key and the identity registry are required unless auth is off")
	}
	return &Auth{cfg: cfg, key: key, ids: ids, buckets: map[string]*bucket{}}, nil
}

// Key returns the site's private key (nil when auth is off): it vouches for the records ingest
// produces (schema.Vouch).
func (a *Auth) Key() ed25519.PrivateKey { return a.key }

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

// credential checks the request's credential, before its body is read: an unsigned request
// where signatures are required, or one whose credential is not the site's, expired, revoked
// or rotated away, is refused without taking any body budget. It returns the credential (nil
// for an unsigned request where that is allowed).
func (a *Auth) credential(r *http.Request, now time.Time) (*schema.Credential, *rejection) {
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
	cred, err := a.creds.parse(token, a.PublicKey(), now)
	if err != nil {
		reason := "bad_credential"
		if errors.Is(err, schema.ErrCredentialExpired) {
			reason = "expired_credential"
		}
		return nil, &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, reason, err.Error(), schema.HeaderCredential, 0}
	}
	if rej := a.current(&cred, now); rej != nil {
		return nil, rej
	}
	return &cred, nil
}

// verifyBody checks the body's signature with the credential's key (nothing for an unsigned
// request).
func (a *Auth) verifyBody(cred *schema.Credential, r *http.Request, body []byte) *rejection {
	if cred == nil {
		return nil
	}
	if !schema.VerifyBody(cred.Key, body, r.Header.Get(schema.HeaderSignature)) {
		return &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "bad_signature",
			"the body's signature does not verify with the credential's key", schema.HeaderSignature, 0}
	}
	return nil
}

// current checks that a credential is of the key that holds its client id now, according to
// the identity log as of at most IdentityMaxStaleness ago: a revoked or rotated-away key is
// refused however long its credential would still be valid.
func (a *Auth) current(cred *schema.Credential, now time.Time) *rejection {
	if stale := a.ids.Staleness(now); stale > a.cfg.IdentityMaxStaleness {
		return &rejection{http.StatusServiceUnavailable, schema.CodeUnavailable, "identity_stale", staleMessage(stale), "", 2 * time.Second}
	}
	holder, held := a.ids.Holder(cred.Client)
	switch {
	case held && bytes.Equal(holder.Key, cred.Key) && holder.Inc == cred.Inc && holder.Kind == cred.Kind:
		return nil
	case a.ids.Retired(cred.Client, cred.Key):
		return &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "revoked",
			fmt.Sprintf("the key of this credential was revoked or rotated away for client %s: enrol again with a new key", cred.Client), schema.HeaderCredential, 0}
	case held && bytes.Equal(holder.Key, cred.Key):
		return &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "bad_credential",
			fmt.Sprintf("the credential is of incarnation %d of client %s, which is at %d: enrol again", cred.Inc, cred.Client, holder.Inc), schema.HeaderCredential, 0}
	default:
		return &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "unknown_credential",
			fmt.Sprintf("client %s is not enrolled with this credential's key at this site: enrol again", cred.Client), schema.HeaderCredential, 0}
	}
}

// authorize checks that a client reports for itself at its site (an enrolled client only
// signed), within its credential's serial range and within the clock bounds.
func (a *Auth) authorize(cred *schema.Credential, rep *schema.Report, now time.Time) *rejection {
	if cred != nil && cred.Kind == schema.KindGateway {
		if rej := a.relayed(cred, rep); rej != nil {
			return rej
		}
	} else if cred != nil {
		if rep.Client != cred.Client {
			return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
				fmt.Sprintf("credential of client %s cannot report for client %s", cred.Client, rep.Client), "client", 0}
		}
		if rep.Site != cred.Site {
			return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_site",
				fmt.Sprintf("client %s is enrolled at site %s, not %s", cred.Client, cred.Site, rep.Site), "site", 0}
		}
		lo, hi := schema.SerialBase(cred.Inc), schema.SerialBase(cred.Inc)+schema.SerialSpan
		for i := range rep.Messages {
			if s := rep.Messages[i].Serial; s <= lo || s >= hi {
				return &rejection{http.StatusBadRequest, schema.CodeMalformed, "serial_range",
					fmt.Sprintf("serial %d is outside this enrolment's range (%d, %d): serials continue above the serial_base the enrolment answered", s, lo, hi),
					fmt.Sprintf("messages[%d].serial", i), 0}
			}
		}
	} else if a.ids != nil {
		// Unsigned (--ingest.auth optional): only for clients that are not enrolled, which a
		// node knows only once it has read the identity log.
		if stale := a.ids.Staleness(now); stale > a.cfg.IdentityMaxStaleness {
			return &rejection{http.StatusServiceUnavailable, schema.CodeUnavailable, "identity_stale", staleMessage(stale), "", 2 * time.Second}
		}
		if a.ids.Known(rep.Client) || a.ids.NeedsGrant(rep.Client) {
			return &rejection{http.StatusUnauthorized, schema.CodeUnauthenticated, "unsigned",
				fmt.Sprintf("client %s is enrolled at this site (or was): its reports must be signed (%s, %s)", rep.Client, schema.HeaderCredential, schema.HeaderSignature),
				schema.HeaderCredential, 0}
		}
	}
	if cred == nil && a.ids != nil && rep.Via != "" {
		// A document relayed unsigned: below every gateway's relays.
		if rej := relayRange(rep, schema.RelayBase(0), schema.RelayBase(1)); rej != nil {
			return rej
		}
	} else if cred == nil && a.ids != nil {
		// An unsigned report's serials stay below every relay range and every enrolment's, so
		// a machine that enrols, and a gateway that relays for it, report above anything sent
		// in its name unsigned (which anyone could send).
		for i := range rep.Messages {
			if rep.Messages[i].Serial > schema.UnsignedSerialMax {
				return &rejection{http.StatusBadRequest, schema.CodeMalformed, "serial_range",
					fmt.Sprintf("serial %d of an unsigned report is above %d, where relayed and enrolled clients' serials begin: enrol, or number from 1", rep.Messages[i].Serial, schema.UnsignedSerialMax),
					fmt.Sprintf("messages[%d].serial", i), 0}
			}
		}
	}
	ahead, behind := now.Add(a.cfg.MaxClockSkew).UnixMilli(), now.Add(-a.cfg.MaxMessageAge).UnixMilli()
	for i := range rep.Messages {
		if t := rep.Messages[i].Time; t > ahead || t < behind {
			dir, limit := "ahead of", a.cfg.MaxClockSkew
			if t < behind {
				dir, limit = "behind", a.cfg.MaxMessageAge
			}
			return &rejection{http.StatusBadRequest, schema.CodeMalformed, "clock_skew",
				fmt.Sprintf("time %d (Unix ms) is more than %s %s the server's clock", t, limit, dir),
				fmt.Sprintf("messages[%d].time", i), 0}
		}
	}
	return nil
}

// relayed checks a report a gateway relays: for a client (not a gateway) of the gateway's
// site, with serials in the gateways' relay ranges (the handler filed them there).
func (a *Auth) relayed(cred *schema.Credential, rep *schema.Report) *rejection {
	if rep.Site != cred.Site {
		return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_site",
			fmt.Sprintf("gateway %s is enrolled at site %s, not %s", cred.Client, cred.Site, rep.Site), "site", 0}
	}
	if kind, _ := a.ids.Kind(rep.Client); kind == schema.KindGateway || rep.Client == cred.Client {
		return &rejection{http.StatusForbidden, schema.CodeForbidden, "wrong_client",
			fmt.Sprintf("%s is a gateway's id: a gateway relays for clients only", rep.Client), "client", 0}
	}
	return relayRange(rep, schema.RelayBase(1), schema.RelayBase(schema.MaxRelayEpoch+1)+schema.RelaySpan)
}

// relayRange refuses a relayed report with a serial outside (lo, hi).
func relayRange(rep *schema.Report, lo, hi uint64) *rejection {
	if rep.Via == "" {
		return &rejection{http.StatusBadRequest, schema.CodeMalformed, "invalid", "BUG: a relayed report without via", "via", 0}
	}
	for i := range rep.Messages {
		if s := rep.Messages[i].Serial; s <= lo || s >= hi {
			return &rejection{http.StatusBadRequest, schema.CodeMalformed, "serial_range",
				fmt.Sprintf("relayed serial %d is outside the relay range (%d, %d)", s, lo, hi),
				fmt.Sprintf("messages[%d].serial", i), 0}
		}
	}
	return nil
}

// pace takes one report of client from its bucket (--ingest.client-rate), or refuses it 429
// with Retry-After. A signed report is paced by its credential's client before its body is
// read, so a client over its rate costs no decoding; an unsigned one once it is decoded.
func (a *Auth) pace(client string, now time.Time) *rejection {
	a.mu.Lock()
	wait := takeToken(a.buckets, &a.swept, client, a.cfg.ClientRate, a.cfg.ClientBurst, now)
	a.mu.Unlock()
	if wait > 0 {
		return &rejection{http.StatusTooManyRequests, schema.CodePaced, "rate_limited",
			fmt.Sprintf("client %s exceeds %g reports/s", client, a.cfg.ClientRate), "client", wait}
	}
	return nil
}
