package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Identity is what an enrolled client keeps between runs (statepipe client enroll --out):
// its id and site, its Ed25519 private key, and the credential the site signed for it.
type Identity struct {
	Client     string    `json:"client"`
	Site       string    `json:"site"`
	Name       string    `json:"name,omitempty"`
	Kind       string    `json:"kind,omitempty"` // schema.KindGateway for a gateway
	PrivateKey []byte    `json:"private_key"`    // ed25519.PrivateKey (JSON: base64)
	Credential string    `json:"credential"`
	Expires    time.Time `json:"expires"`
	// SerialBase is the serial below the first this enrolment may use: the client's serials
	// continue above it (schema.SerialBase).
	SerialBase uint64 `json:"serial_base"`
	// NextPrivateKey is the key a rotation in progress gives the id: kept before the request
	// is sent, so a rotation whose answer was lost completes by enrolling with it.
	NextPrivateKey []byte `json:"next_private_key,omitempty"`
}

// LoadIdentity reads an identity file.
func LoadIdentity(path string) (*Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if len(id.PrivateKey) != ed25519.PrivateKeySize || id.Credential == "" || id.Client == "" {
		return nil, fmt.Errorf("identity %s: incomplete (client, private_key and credential are required)", path)
	}
	return &id, nil
}

// Save writes the identity file, readable by its owner only: it holds the private key.
func (id *Identity) Save(path string) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// Enroll claims cfg.ClientID at cfg.Site (POST /v1/enroll) with cfg.Identity's key, or a new
// key when cfg.Identity is nil, and returns a client that signs every report. The site answers
// the enrolment's serial base: the client's serials continue above it, so a machine enrolling
// again (reinstalled with a new key under its old id) reports above anything any earlier key
// of the id could have sent, and its states win (rule 1). Its first report should be full,
// which tells the site the jump is not a gap.
//
// While the site admits no more new clients it answers 429 with a Retry-After: Enroll waits
// each out (Config.OnPaced hears of them) for up to Config.EnrollPatience (1 h) or until ctx
// is done, whichever comes first.
func Enroll(ctx context.Context, cfg Config) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.enroll(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Identity returns the client's identity (nil before enrolment), to Save.
func (c *Client) Identity() *Identity {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	return c.id
}

// enroll obtains a credential for the client's key (creating a key if it has none), waiting
// out the site's pacing for up to EnrollPatience. idMu is not held while it waits (reports
// are: enroll runs under mu, or before anyone else has the client).
func (c *Client) enroll(ctx context.Context) error {
	c.idMu.Lock()
	id := c.id
	c.idMu.Unlock()
	if id == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		id = &Identity{Client: c.cfg.ClientID, Site: c.cfg.Site, Name: c.cfg.Name, Kind: c.cfg.Kind, PrivateKey: key}
	}
	key := ed25519.PrivateKey(id.PrivateKey)
	body, _ := json.Marshal(schema.EnrollRequest{Client: id.Client, Name: id.Name, Kind: id.Kind, Site: id.Site, PublicKey: key.Public().(ed25519.PublicKey),
		Grant: c.cfg.EnrollGrant})
	er, err := c.postEnrollTries(ctx, body, nil, c.cfg.MaxAttempts, max(c.cfg.EnrollPatience, 0))
	if err != nil {
		return fmt.Errorf("cannot enrol: %w", err)
	}
	c.idMu.Lock()
	id.Credential, id.Expires, id.SerialBase = er.Credential, er.Expires, er.SerialBase
	c.id = id
	c.idMu.Unlock()
	c.raise(er.SerialBase)
	return nil
}

// postEnroll posts a rotation body with headers, retrying what is safe to retry as reports
// are (429 and 503 honouring Retry-After, at most MaxAttempts tries: a node still reading its
// identity log answers 503).
func (c *Client) postEnroll(ctx context.Context, body []byte, headers map[string]string) (*schema.EnrollResponse, error) {
	return c.postEnrollTries(ctx, body, headers, c.cfg.MaxAttempts, 0)
}

// postEnrollTries is postEnroll with at most tries tries, and patience for 429 answers (see
// retryN).
func (c *Client) postEnrollTries(ctx context.Context, body []byte, headers map[string]string, tries int, patience time.Duration) (*schema.EnrollResponse, error) {
	var er *schema.EnrollResponse
	err := c.retryN(ctx, tries, patience, func() (time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+"/v1/enroll", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", schema.MediaJSON)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if c.cfg.EnrollToken != "" {
			req.Header.Set("Authorization", "Bearer "+c.cfg.EnrollToken)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode != http.StatusOK {
			apiErr := apiError(resp, raw)
			return apiErr.RetryAfter, apiErr
		}
		er = new(schema.EnrollResponse)
		if err := json.Unmarshal(raw, er); err != nil || er.Credential == "" {
			return 0, &APIError{Status: resp.StatusCode, ErrorDetail: schema.ErrorDetail{Code: "http", Message: "bad answer " + strings.TrimSpace(string(raw))}}
		}
		return 0, nil
	})
	return er, err
}

// raise moves the next serial above base.
func (c *Client) raise(base uint64) {
	c.serialMu.Lock()
	defer c.serialMu.Unlock()
	c.serial = max(c.serial, base)
}

// SerialBase returns the enrolment's serial base (0 without an identity).
func (c *Client) SerialBase() uint64 {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if c.id == nil {
		return 0
	}
	return c.id.SerialBase
}

// Rotate gives the client's id to a new key (POST /v1/enroll, signed with the current key
// over the request, which names the new key and the time): the old key can never report or
// enrol again. The new enrolment has a serial base above every earlier one; the next report
// should be full.
//
// persist is called with the identity holding the new key as NextPrivateKey before the
// request is sent, and again once the rotation is done: a rotation whose answer was lost
// (the site applied it, the client never heard) is completed by calling Rotate again with the
// identity persist saved — the site answers an enrolment with the key that now holds the id.
// Reports wait while a rotation runs.
func (c *Client) Rotate(ctx context.Context, persist func(*Identity) error) error {
	c.mu.Lock() // no report is numbered for the old range and sent with the new credential
	defer c.mu.Unlock()
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if c.id == nil {
		return errors.New("cannot rotate: the client is not enrolled")
	}
	id := *c.id
	next := ed25519.PrivateKey(id.NextPrivateKey)
	if len(next) == ed25519.PrivateKeySize {
		// A rotation begun before: if the site applied it (its answer was lost), the new key
		// holds the id already, and enrolling with it completes the rotation.
		body, _ := json.Marshal(schema.EnrollRequest{Client: id.Client, Name: id.Name, Kind: id.Kind, Site: id.Site, PublicKey: next.Public().(ed25519.PublicKey)})
		if er, err := c.postEnrollTries(ctx, body, nil, 1, 0); err == nil {
			return c.rotated(&id, next, er, persist)
		}
	} else {
		var err error
		if _, next, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return err
		}
		id.NextPrivateKey = next
		if err := persist(&id); err != nil {
			return fmt.Errorf("cannot rotate: cannot keep the new key before sending: %w", err)
		}
		c.id = &id
	}
	body, _ := json.Marshal(schema.EnrollRequest{Client: id.Client, Name: id.Name, Kind: id.Kind, Site: id.Site,
		PublicKey: next.Public().(ed25519.PublicKey), Time: time.Now().UnixMilli()})
	er, err := c.postEnroll(ctx, body, map[string]string{schema.HeaderCredential: id.Credential,
		schema.HeaderSignature: schema.SignBody(ed25519.PrivateKey(id.PrivateKey), body)})
	if err != nil {
		return fmt.Errorf("cannot rotate: %w", err)
	}
	return c.rotated(&id, next, er, persist)
}

// rotated makes next the client's key after a rotation answered er.
func (c *Client) rotated(id *Identity, next ed25519.PrivateKey, er *schema.EnrollResponse, persist func(*Identity) error) error {
	id.PrivateKey, id.NextPrivateKey = next, nil
	id.Credential, id.Expires, id.SerialBase = er.Credential, er.Expires, er.SerialBase
	c.id = id
	c.raise(er.SerialBase)
	if err := persist(id); err != nil {
		return fmt.Errorf("rotated, but cannot keep the identity (its next_private_key completes the rotation): %w", err)
	}
	return nil
}

// sign returns the credential and the signature of body (empty without an identity).
func (c *Client) sign(body []byte) (credential, signature string) {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	if c.id == nil {
		return "", ""
	}
	return c.id.Credential, schema.SignBody(ed25519.PrivateKey(c.id.PrivateKey), body)
}

// renewable reports whether err says the credential expired: enrolling again with the same
// key renews it. A revoked credential is not renewed: revocation usually means the key is
// no longer trusted, so enrolling again takes a new identity (statepipe client enroll).
func (c *Client) renewable(err error) bool {
	var apiErr *APIError
	return c.Identity() != nil && errors.As(err, &apiErr) && apiErr.Status == http.StatusUnauthorized &&
		apiErr.Field == schema.HeaderCredential && (apiErr.Code == schema.CodeUnauthenticated) &&
		(strings.Contains(apiErr.Message, "expired") || strings.Contains(apiErr.Message, "not enrolled"))
}
