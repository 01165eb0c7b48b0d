package ingest

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// A cached credential is the verified one: its expiry is still checked, a token signed by
// another key or altered is verified afresh (and refused), and a rotated site key
// re-verifies.
func TestCredentialCacheVerifiesWhatItHasNotSeen(t *testing.T) {
	sitePub, sitePriv, _ := ed25519.GenerateKey(nil)
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	clientPub, _, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	cred := schema.Credential{V: schema.CredentialVersion, Client: "pc-1", Site: "P01", Key: clientPub, Inc: 1,
		Expires: now.Add(time.Hour).UnixMilli()}
	token, err := schema.SignCredential(cred, sitePriv)
	if err != nil {
		t.Fatal(err)
	}
	var c credentialCache
	for i := range 2 { // verified, then from the cache
		got, err := c.parse(token, sitePub, now)
		if err != nil || got.Client != "pc-1" {
			t.Fatalf("parse %d: %+v, %v", i, got, err)
		}
	}
	if _, err := c.parse(token, sitePub, now.Add(2*time.Hour)); !errors.Is(err, schema.ErrCredentialExpired) {
		t.Errorf("cached credential after its expiry: %v, want ErrCredentialExpired", err)
	}
	if _, err := c.parse(token, otherPub, now); !errors.Is(err, schema.ErrCredentialSignature) {
		t.Errorf("cached token under another site key: %v, want ErrCredentialSignature", err)
	}
	forged, err := schema.SignCredential(cred, otherPriv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.parse(forged, sitePub, now); !errors.Is(err, schema.ErrCredentialSignature) {
		t.Errorf("token signed by another key: %v, want ErrCredentialSignature", err)
	}
	altered := token[:len(token)-2] + "AA"
	if altered == token {
		altered = token[:len(token)-2] + "BB"
	}
	if _, err := c.parse(altered, sitePub, now); err == nil {
		t.Error("an altered token verified")
	}
}
