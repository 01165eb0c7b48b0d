package schema

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Records a site's ingest produced (reports into state.<site>, reference data into
// ref.<site>, identity events into identity.<site>) carry the site's signature, so that a
// process able to produce to the broker behind ingest's back cannot have a forged record
// folded: the projector and the identity mirrors check it with the site's public key and
// refuse (dead-letter or ignore) a record without a valid one.
//
//	statepipe-vouch: base64(Ed25519(site key, SHA-256("statepipe-vouch-v1" 0 topic 0 key 0 value)))
//
// The topic and the key are covered, so a vouched record cannot be moved to another site's
// topic or to another client's key; the record timestamp is not (a broker may rewrite it).
const HeaderVouch = "statepipe-vouch"

const vouchContext = "statepipe-vouch-v1"

func vouchDigest(topic string, key, value []byte) []byte {
	h := sha256.New()
	h.Write([]byte(vouchContext))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(key)
	h.Write([]byte{0})
	h.Write(value)
	return h.Sum(nil)
}

// Vouch returns the statepipe-vouch header value of a record.
func Vouch(site ed25519.PrivateKey, topic string, key, value []byte) []byte {
	sig := ed25519.Sign(site, vouchDigest(topic, key, value))
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sig)))
	base64.StdEncoding.Encode(out, sig)
	return out
}

// Vouch errors.
var (
	ErrUnvouched  = errors.New("record carries no " + HeaderVouch + " header: it was not produced by this site's ingest")
	ErrBadVouched = errors.New("record's " + HeaderVouch + " signature does not verify with the site's public key")
)

// VerifyVouch checks a record's statepipe-vouch header value (nil when absent).
func VerifyVouch(site ed25519.PublicKey, topic string, key, value, header []byte) error {
	if header == nil {
		return ErrUnvouched
	}
	sig := make([]byte, base64.StdEncoding.DecodedLen(len(header)))
	n, err := base64.StdEncoding.Decode(sig, header)
	if err != nil || n != ed25519.SignatureSize || len(site) != ed25519.PublicKeySize ||
		!ed25519.Verify(site, vouchDigest(topic, key, value), sig[:n]) {
		return ErrBadVouched
	}
	return nil
}
