package schema

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestVouchCoversTopicKeyAndValue(t *testing.T) {
	pub, site, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	h := Vouch(site, "state.P01", []byte("pc-1"), []byte("report"), 1764100000000)
	keys := []ed25519.PublicKey{pub}
	if err := VerifyVouch(keys, "state.P01", []byte("pc-1"), []byte("report"), h, 1764100000000); err != nil {
		t.Fatalf("a vouched record does not verify: %v", err)
	}
	// A site key rotated: what the old key vouched for verifies with both.
	newPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := VerifyVouch([]ed25519.PublicKey{newPub, pub}, "state.P01", []byte("pc-1"), []byte("report"), h, 1764100000000); err != nil {
		t.Fatalf("a record vouched with the previous key: %v", err)
	}
	for name, c := range map[string]struct {
		topic      string
		key, value []byte
		header     []byte
		want       error
		accepted   int64
	}{
		"another acceptance time": {"state.P01", []byte("pc-1"), []byte("report"), h, ErrBadVouched, 1764100000001},
		"absent":                  {"state.P01", []byte("pc-1"), []byte("report"), nil, ErrUnvouched, 1764100000000},
		"empty":                   {"state.P01", []byte("pc-1"), []byte("report"), []byte{}, ErrBadVouched, 1764100000000},
		"not base64":              {"state.P01", []byte("pc-1"), []byte("report"), []byte("!!"), ErrBadVouched, 1764100000000},
		"another topic":           {"state.P02", []byte("pc-1"), []byte("report"), h, ErrBadVouched, 1764100000000},
		"another key":             {"state.P01", []byte("pc-2"), []byte("report"), h, ErrBadVouched, 1764100000000},
		"another value":           {"state.P01", []byte("pc-1"), []byte("reporT"), h, ErrBadVouched, 1764100000000},
		"boundary moved":          {"state.P01", []byte("pc-1r"), []byte("eport"), h, ErrBadVouched, 1764100000000},
		"another site key":        {"state.P01", []byte("pc-1"), []byte("report"), Vouch(other, "state.P01", []byte("pc-1"), []byte("report"), 1764100000000), ErrBadVouched, 1764100000000},
	} {
		if err := VerifyVouch(keys, c.topic, c.key, c.value, c.header, c.accepted); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", name, err, c.want)
		}
	}
}

func TestSerialRangesOfIncarnationsNeverOverlap(t *testing.T) {
	if SerialBase(1) <= uint64(time.Date(2041, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()) {
		t.Errorf("incarnation 1 starts at %d, below the enrolment-time serials earlier versions used", SerialBase(1))
	}
	for _, inc := range []uint32{1, 2, 1000, MaxIncarnation - 1} {
		if SerialBase(inc)+SerialSpan > SerialBase(inc+1) {
			t.Errorf("incarnation %d's range overlaps the next", inc)
		}
	}
	if top := SerialBase(MaxIncarnation) + SerialSpan - 1; top < SerialBase(MaxIncarnation) {
		t.Errorf("incarnation %d's range overflows uint64", MaxIncarnation)
	}
}

// A credential of format 1 (no incarnation) is answered as expired, so the SDK enrols again;
// one of format 2 without an incarnation is malformed.
func TestCredentialFormatsBeforeSerialRangesAreRenewed(t *testing.T) {
	pub, site, _ := ed25519.GenerateKey(rand.Reader)
	cpub, _, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	sign := func(payload map[string]any) string {
		b, _ := json.Marshal(payload)
		return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(site, b))
	}
	v1 := sign(map[string]any{"v": 1, "id": "x", "client": "pc", "site": "P01", "key": cpub, "iat_ms": now.UnixMilli(), "exp_ms": now.Add(time.Hour).UnixMilli()})
	if _, err := ParseCredential(v1, pub, now); !errors.Is(err, ErrCredentialExpired) {
		t.Errorf("format 1: %v, want it answered as expired", err)
	}
	noInc := sign(map[string]any{"v": 2, "id": "x", "client": "pc", "site": "P01", "key": cpub, "iat_ms": now.UnixMilli(), "exp_ms": now.Add(time.Hour).UnixMilli()})
	if _, err := ParseCredential(noInc, pub, now); !errors.Is(err, ErrCredentialMalformed) {
		t.Errorf("format 2 without an incarnation: %v, want malformed", err)
	}
}

// BenchmarkVouch is ingest's cost per record (sign) and the projector's (verify), for a
// 300-message report (≈ 25 KB of msgpack).
func BenchmarkVouch(b *testing.B) {
	pub, site, _ := ed25519.GenerateKey(rand.Reader)
	value := make([]byte, 25<<10)
	b.Run("sign", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			_ = Vouch(site, "state.P01", []byte("00000000-0000-0000-0000-000000000001"), value, 1)
		}
	})
	h := Vouch(site, "state.P01", []byte("00000000-0000-0000-0000-000000000001"), value, 1)
	b.Run("verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := VerifyVouch([]ed25519.PublicKey{pub}, "state.P01", []byte("00000000-0000-0000-0000-000000000001"), value, h, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
