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
	PrivateKey []byte    `json:"private_key"` // ed25519.PrivateKey (JSON: base64)
	Credential string    `json:"credential"`
	Expires    time.Time `json:"expires"`
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
// key when cfg.Identity is nil, and returns a client that signs every report.
func Enroll(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.NextSerial == 0 {
		// A machine enrolling without a serial to continue from (new, or reinstalled with a
		// new key under its old id) starts at the enrolment time in microseconds: above
		// anything it can have reported before, so its states are not older than its old ones
		// (rule 1) and its serials never repeat. Its first report is full, which tells the
		// site the jump is not a gap.
		cfg.NextSerial = uint64(time.Now().UnixMicro())
	}
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

// enroll obtains a credential for the client's key (creating a key if it has none).
func (c *Client) enroll(ctx context.Context) error {
	c.idMu.Lock()
	defer c.idMu.Unlock()
	id := c.id
	if id == nil {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		id = &Identity{Client: c.cfg.ClientID, Site: c.cfg.Site, Name: c.cfg.Name, PrivateKey: key}
	}
	key := ed25519.PrivateKey(id.PrivateKey)
	body, _ := json.Marshal(schema.EnrollRequest{Client: id.Client, Name: id.Name, Site: id.Site, PublicKey: key.Public().(ed25519.PublicKey)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.URL+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", schema.MediaJSON)
	if c.cfg.EnrollToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.EnrollToken)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot enrol: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cannot enrol: %w", apiError(resp, raw))
	}
	var er schema.EnrollResponse
	if err := json.Unmarshal(raw, &er); err != nil || er.Credential == "" {
		return fmt.Errorf("cannot enrol: bad answer %q", strings.TrimSpace(string(raw)))
	}
	id.Credential, id.Expires = er.Credential, er.Expires
	c.id = id
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
		apiErr.Field == schema.HeaderCredential && strings.Contains(apiErr.Message, "expired")
}
