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
	Inc     uint32 `json:"inc"`    // the enrolment's incarnation: its serials are SerialBase(Inc)+1 …
	Issued  int64  `json:"iat_ms"` // Unix milliseconds
	Expires int64  `json:"exp_ms"` // Unix milliseconds
	// Kind is KindGateway for a gateway (which reports for any client of its site), "" for a
	// client (which reports for itself).
	Kind string `json:"kind,omitempty"`
}

// KindGateway is the kind of a gateway's credential and enrolment: ConfigMgr's management
// point, or the importer of a copy of its inbox, relaying documents for the clients of its
// site. An administrator enrols it; its serials are relayed ones (RelayBase).
const KindGateway = "gateway"

// Relayed serials. A gateway relays ConfigMgr's SerialNumber, a per-client counter since the
// ConfigMgr client was installed; ingest files it at RelayBase(1 + the site's relay epoch) +
// SerialNumber — the same base for every gateway of the site, so relays of one client through
// several gateways keep ConfigMgr's order. The relay epoch counts the gateway keys the site's
// administrators revoked: after a revocation every gateway relays above anything the revoked
// key could have sent, so a stolen gateway key's states lose to the next state ConfigMgr
// relays. Documents accepted unsigned are filed at RelayBase(0), below every gateway's, and
// unsigned reports stay below that (UnsignedSerialMax). Every relayed serial is below
// SerialBase(1): a machine that enrols natively wins over anything relayed in its name.
const (
	RelaySpan = uint64(1) << 40 // ConfigMgr's SerialNumber must be below it
	// MaxRelayEpoch is the highest relay epoch with a range of its own: past it (1,022 gateway
	// revocations at one site) relays stay in the last range.
	MaxRelayEpoch = uint32(1022)
)

// RelayBase returns the serial below the first of a relay range: 0 for documents accepted
// unsigned, 1 + the relay epoch for a gateway's (at most MaxRelayEpoch + 1).
func RelayBase(r uint32) uint64 { return (1024 + uint64(r)) << 40 }

// UnsignedSerialMax is the highest serial of an unsigned report: below every relay range, so
// that neither a relayed client's states nor an enrolled client's can be outranked by a
// report anyone could send.
const UnsignedSerialMax = uint64(1024) << 40

// CredentialVersion is the credential format version. Version 1 (no incarnation) is no longer
// accepted: ParseCredential answers it as expired, so the SDK enrols again with its key.
const CredentialVersion = 2

// Serials of an enrolment (DESIGN rule 1 orders a key's states by serial alone). Each holding
// of a client id by a key is an incarnation, numbered from 1 by the site's identity log; the
// serials of incarnation n are the SerialSpan values above SerialBase(n). A machine that enrols
// again (a new key after a revocation, or a rotation) gets the next incarnation, so every
// serial it sends is greater than anything any earlier key of the id could send, and its
// states win over a stolen key's — in the live state and in a rebuild from the raw log alike.
// Ingest refuses a signed message whose serial is outside its credential's range.
const (
	SerialSpan = uint64(1) << 40 // 1.1 × 10^12 messages per incarnation
	// serialOffset places incarnation 1 above 2^51, above the serials earlier versions started
	// from (the enrolment time in microseconds, below 2^51 until 2041).
	serialOffset = 2048
	// MaxIncarnation keeps every incarnation's range within uint64.
	MaxIncarnation = uint32(1<<24 - serialOffset - 1)
)

// SerialBase returns the serial below incarnation inc's first (inc ≥ 1).
func SerialBase(inc uint32) uint64 { return (serialOffset + uint64(inc)) << 40 }

// EnrollRequest is the body of POST /v1/enroll.
//
// A rotation (the id's holder gives it to a new key) is the same request with the new key in
// public_key and the time it was made, sent with the holder's credential in
// Statepipe-Credential and, in Statepipe-Signature, the holder key's signature over the exact
// body: the proof is bound to the new key and to a time within RotationWindow of the site's
// clock.
type EnrollRequest struct {
	Client    string `json:"client"`
	Name      string `json:"name,omitempty"`
	Site      string `json:"site"`
	PublicKey []byte `json:"public_key"`        // Ed25519, 32 bytes (JSON: base64)
	Time      int64  `json:"time_ms,omitempty"` // rotation: when it was signed (Unix ms)
	// Kind is KindGateway to enrol a gateway (with the site's admin token), "" for a client.
	Kind string `json:"kind,omitempty"`
	// Grant is the one-time code the revocation of this client id answered its administrator:
	// a revoked id is enrolled again only with it (a thief with the enrolment token cannot race
	// the machine for it).
	Grant string `json:"grant,omitempty"`
}

// RotationWindow is how far a rotation request's time may be from the site's clock.
const RotationWindow = 5 * time.Minute

// EnrollResponse answers a successful enrolment.
type EnrollResponse struct {
	Credential string    `json:"credential"`
	Expires    time.Time `json:"expires"`
	// SerialBase is the serial below the first this enrolment may use (SerialBase(Inc)): the
	// SDK continues above it.
	SerialBase uint64 `json:"serial_base"`
}

// b64 is the tokens' encoding, strict: one token has one spelling (no non-zero padding bits;
// ParseCredential refuses line breaks, which the decoder would skip), so that a cache keyed by
// the token cannot be churned with variants of it.
var b64 = base64.RawURLEncoding.Strict()

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
	if !ok || strings.ContainsAny(token, "\r\n") {
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
	if err := d.Decode(&c); err == nil && c.V < CredentialVersion {
		return c, fmt.Errorf("%w (format %d, before serial ranges: enrol again)", ErrCredentialExpired, c.V)
	}
	d = json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	c = Credential{}
	if err := d.Decode(&c); err != nil || c.V != CredentialVersion || len(c.Key) != ed25519.PublicKeySize || c.Client == "" || c.Site == "" ||
		c.Inc == 0 || c.Inc > MaxIncarnation || (c.Kind != "" && c.Kind != KindGateway) {
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
