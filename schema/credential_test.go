package schema

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCredentialSignParseAndRefusals(t *testing.T) {
	pub, site, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	cpub, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	c := Credential{ID: "x", Client: "pc-1", Site: "P01", Key: cpub, Inc: 1, Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}
	tok, err := SignCredential(c, site)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCredential(tok, pub, now)
	if err != nil || got.Client != "pc-1" || got.Site != "P01" || got.V != CredentialVersion {
		t.Fatalf("parse: %+v %v", got, err)
	}
	forged, _ := SignCredential(c, other)
	p, s, _ := strings.Cut(tok, ".")
	// Another spelling of the same signature bytes: the signature's 64 bytes leave 4 unused
	// bits in its last base64 character, which a lenient decoder ignores.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	respelled := p + "." + s[:len(s)-1] + string(alphabet[strings.IndexByte(alphabet, s[len(s)-1])|1])
	_, s2, _ := strings.Cut(forged, ".")
	for name, tc := range map[string]struct {
		token string
		at    time.Time
		want  error
	}{
		"other site key":      {forged, now, ErrCredentialSignature},
		"payload swapped":     {p + "." + s2, now, ErrCredentialSignature},
		"expired":             {tok, now.Add(2 * time.Hour), ErrCredentialExpired},
		"no dot":              {p + s, now, ErrCredentialMalformed},
		"bad base64":          {"!!." + s, now, ErrCredentialMalformed},
		"truncated signature": {p + "." + s[:10], now, ErrCredentialMalformed},
		"another spelling":    {respelled, now, ErrCredentialMalformed},
		"a line break":        {p[:5] + "\n" + p[5:] + "." + s, now, ErrCredentialMalformed},
	} {
		if _, err := ParseCredential(tc.token, pub, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
	body := []byte("report bytes")
	sig := SignBody(cpriv, body)
	if !VerifyBody(cpub, body, sig) {
		t.Error("a body's own signature does not verify")
	}
	if VerifyBody(cpub, append(body, '!'), sig) || VerifyBody(cpub, body, "") || VerifyBody(cpub, body, "%%%") {
		t.Error("a wrong signature verifies")
	}
}

func BenchmarkVerifyReportSignature(b *testing.B) {
	pub, site, _ := ed25519.GenerateKey(rand.Reader)
	cpub, cpriv, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	tok, _ := SignCredential(Credential{Client: "pc-1", Site: "P01", Key: cpub, Inc: 1, Issued: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()}, site)
	body := make([]byte, 30000) // a 300-message report is about 25-30 KB of msgpack
	sig := SignBody(cpriv, body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseCredential(tok, pub, now)
		if err != nil || !VerifyBody(c.Key, body, sig) {
			b.Fatal("does not verify")
		}
	}
}
