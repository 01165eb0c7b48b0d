package schema

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Records a site's ingest produced (reports into state.<site>, reference data into
// ref.<site>, identity events into identity.<site>) carry the site's signature, so that a
// process able to produce to the broker behind ingest's back cannot have a forged record
// folded: the projector and the identity mirrors check it with the site's public key and
// refuse (dead-letter or ignore) a record without a valid one.
//
//	statepipe-accepted: the acceptance time, Unix ms, decimal (state records; absent: 0)
//	statepipe-vouch:    base64(Ed25519(site key, SHA-256("statepipe-vouch-v2" 0 topic 0 key 0
//	                    accepted 0 value)))
//
// The topic and the key are covered, so a vouched record cannot be moved to another site's
// topic or to another client's key; so is the acceptance time, which the projector takes from
// statepipe-accepted rather than from the record timestamp (anyone who can produce can set
// that, and a broker may rewrite it).
const (
	HeaderVouch    = "statepipe-vouch"
	HeaderAccepted = "statepipe-accepted"
)

const vouchContext = "statepipe-vouch-v2"

func vouchDigest(topic string, key, value []byte, acceptedMs int64) []byte {
	h := sha256.New()
	h.Write([]byte(vouchContext))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write(key)
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, acceptedMs, 10))
	h.Write([]byte{0})
	h.Write(value)
	return h.Sum(nil)
}

// Vouch returns the statepipe-vouch header value of a record accepted at acceptedMs (0 for
// records without an acceptance time).
func Vouch(site ed25519.PrivateKey, topic string, key, value []byte, acceptedMs int64) []byte {
	sig := ed25519.Sign(site, vouchDigest(topic, key, value, acceptedMs))
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sig)))
	base64.StdEncoding.Encode(out, sig)
	return out
}

// Vouch errors.
var (
	ErrUnvouched  = errors.New("record carries no " + HeaderVouch + " header: it was not produced by this site's ingest")
	ErrBadVouched = errors.New("record's " + HeaderVouch + " signature does not verify with the site's public key")
)

// VerifyVouch checks a record's statepipe-vouch header value (nil when absent) against the
// site's keys: the current one and those it replaced (a site key rotated keeps the records
// and identity events vouched for with the old one).
func VerifyVouch(keys []ed25519.PublicKey, topic string, key, value, header []byte, acceptedMs int64) error {
	if header == nil {
		return ErrUnvouched
	}
	sig := make([]byte, base64.StdEncoding.DecodedLen(len(header)))
	n, err := base64.StdEncoding.Decode(sig, header)
	if err != nil || n != ed25519.SignatureSize {
		return ErrBadVouched
	}
	digest := vouchDigest(topic, key, value, acceptedMs)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, digest, sig[:n]) {
			return nil
		}
	}
	return ErrBadVouched
}

// AcceptedHeader encodes an acceptance time for the statepipe-accepted header.
func AcceptedHeader(acceptedMs int64) []byte { return strconv.AppendInt(nil, acceptedMs, 10) }

// ParseAccepted decodes a statepipe-accepted header value (nil: 0).
func ParseAccepted(header []byte) (int64, error) {
	if header == nil {
		return 0, nil
	}
	ms, err := strconv.ParseInt(string(header), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse the %s header %q: %w", HeaderAccepted, header, err)
	}
	return ms, nil
}

// HeaderValue returns the value of a Kafka record header, nil when absent (empty when present
// without a value). Components declare their record headers as aliases of this unnamed struct
// type, so their slices pass here as they are.
func HeaderValue(headers []struct {
	Key   string
	Value []byte
}, key string) []byte {
	for _, h := range headers {
		if h.Key == key {
			if h.Value == nil {
				return []byte{}
			}
			return h.Value
		}
	}
	return nil
}
