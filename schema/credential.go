package schema

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Signed reports (DESIGN §4, issue 4). A client enrols once (POST /v1/enroll) with its
// Ed25519 public key and receives a credential signed by the site's key; every report then
// carries the credential and the client's signature over the exact body bytes:
//
//	Statepipe-Credential: <credential token>
//	Statepipe-Signature:  base64(ed25519.Sign(client private key, body))
//
// Any ingest node of the site verifies both with the site's public key alone: no database
// round trip.
const (
	HeaderCredential = "Statepipe-Credential"
	HeaderSignature  = "Statepipe-Signature"
)

// Credential binds a client id and site to the client's public key until Expires.
type Credential struct {
	V       int    `json:"v"`
	ID      string `json:"id"` // random, for logs
	Client  string `json:"client"`
	Name    string `json:"name,omitempty"`
	Site    string `json:"site"`
	Key     []byte `json:"key"`    // the client's Ed25519 public key (JSON: base64)
	Issued  int64  `json:"iat_ms"` // Unix milliseconds
	Expires int64  `json:"exp_ms"` // Unix milliseconds
}

// CredentialVersion is the credential format version.
const CredentialVersion = 1

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Client    string `json:"client"`
	Name      string `json:"name,omitempty"`
	Site      string `json:"site"`
	PublicKey []byte `json:"public_key"` // Ed25519, 32 bytes (JSON: base64)
}

// EnrollResponse answers a successful enrolment.
type EnrollResponse struct {
	Credential string    `json:"credential"`
	Expires    time.Time `json:"expires"`
}

var b64 = base64.RawURLEncoding

// SignCredential encodes c and signs it with the site's private key: a token of two
// base64url parts, payload and signature, joined by a dot.
func SignCredential(c Credential, site ed25519.PrivateKey) (string, error) {
	c.V = CredentialVersion
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(ed25519.Sign(site, payload)), nil
}

// Credential errors.
var (
	ErrCredentialMalformed = errors.New("credential is malformed")
	ErrCredentialSignature = errors.New("credential is not signed by this site")
	ErrCredentialExpired   = errors.New("credential has expired")
)

// ParseCredential verifies a token against the site's public key and its expiry at now.
func ParseCredential(token string, site ed25519.PublicKey, now time.Time) (Credential, error) {
	var c Credential
	p, s, ok := strings.Cut(token, ".")
	if !ok {
		return c, ErrCredentialMalformed
	}
	payload, err1 := b64.DecodeString(p)
	sig, err2 := b64.DecodeString(s)
	if err1 != nil || err2 != nil || len(sig) != ed25519.SignatureSize {
		return c, ErrCredentialMalformed
	}
	if !ed25519.Verify(site, payload, sig) {
		return c, ErrCredentialSignature
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil || c.V != CredentialVersion || len(c.Key) != ed25519.PublicKeySize || c.Client == "" || c.Site == "" {
		return Credential{}, ErrCredentialMalformed
	}
	if now.UnixMilli() >= c.Expires {
		return c, fmt.Errorf("%w (expired %s)", ErrCredentialExpired, time.UnixMilli(c.Expires).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// SignBody returns the Statepipe-Signature value for body.
func SignBody(key ed25519.PrivateKey, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, body))
}

// VerifyBody checks a Statepipe-Signature value over body with the client's public key.
func VerifyBody(key ed25519.PublicKey, body []byte, signature string) bool {
	sig, err := base64.StdEncoding.DecodeString(signature)
	return err == nil && len(sig) == ed25519.SignatureSize && len(key) == ed25519.PublicKeySize && ed25519.Verify(key, body, sig)
}
