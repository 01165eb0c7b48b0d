package ingest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/statepipe/statepipe/schema"
)

// Enroller serves POST /v1/enroll and, for administrators, POST /v1/revoke.
//
// Enrolment claims a client id for a public key: the claim goes to the site's compacted topic
// enrollments.<site> (key client id) that every ingest node mirrors, so an id already claimed
// with another key is refused (409) until an administrator revokes it — or the holder of the
// current key asks, signing the request with its credential (key rotation). Revocation
// writes revocations.<site> (key client id, timestamp = the revocation): every credential of
// that client issued up to then is refused. Enrolment is also where rollout pacing will
// answer 429.
type Enroller struct {
	Site        string
	Auth        *Auth
	Enrolled    WritableRegistry // mirror of enrollments.<site>
	Enrollments Producer         // writer on enrollments.<site>
	Revocations Producer         // writer on revocations.<site>
	Log         *slog.Logger
}

// WritableRegistry is a Registry this process also writes to: it applies its own writes at
// once, so one ingest node never grants a claimed id twice (nodes learn of each other's
// claims as fast as they mirror the topic).
type WritableRegistry interface {
	Registry
	Put(key string, value []byte, at time.Time)
}

// enrollment is the value of an enrollments.<site> record.
type enrollment struct {
	Key  []byte `json:"key"`
	Name string `json:"name,omitempty"`
}

// ServeEnroll handles POST /v1/enroll.
func (e *Enroller) ServeEnroll(w http.ResponseWriter, r *http.Request) {
	if e.Auth == nil || e.Auth.key == nil {
		writeError(w, http.StatusNotFound, schema.CodeNotFound, "enrolment is off at this site (--ingest.auth off)", "")
		return
	}
	if tok := e.Auth.cfg.EnrollToken; tok != "" && !bearer(r, tok) {
		writeError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, "enrolment needs the site's enrolment token (Authorization: Bearer)", "Authorization")
		return
	}
	var req schema.EnrollRequest
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, "cannot decode enrolment: "+err.Error(), "body")
		return
	}
	switch {
	case req.Client == "" || len(req.Client) > 128:
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, "client is required (at most 128 bytes)", "client")
		return
	case len(req.Name) > 256:
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, "name is at most 256 bytes", "name")
		return
	case len(req.PublicKey) != ed25519.PublicKeySize:
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, fmt.Sprintf("public_key must be an Ed25519 public key (%d bytes, base64), got %d bytes", ed25519.PublicKeySize, len(req.PublicKey)), "public_key")
		return
	case req.Site != e.Site:
		writeError(w, http.StatusForbidden, schema.CodeForbidden, fmt.Sprintf("this ingest serves site %s, not %s", e.Site, req.Site), "site")
		return
	}
	if prev, _, ok := e.Enrolled.Get(req.Client); ok {
		var old enrollment
		if json.Unmarshal(prev, &old) == nil && !bytes.Equal(old.Key, req.PublicKey) && !e.rotation(r, req.Client, old.Key) {
			writeError(w, http.StatusConflict, schema.CodeConflict,
				fmt.Sprintf("client %s is enrolled with another key: sign the request with its current credential to rotate, or have an administrator revoke it", req.Client), "client")
			return
		}
	}
	value, _ := json.Marshal(enrollment{Key: req.PublicKey, Name: req.Name})
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := e.Enrollments.WriteMessages(ctx, kafkago.Message{Key: []byte(req.Client), Value: value}); err != nil {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, schema.CodeUnavailable, "the broker did not acknowledge the enrolment; retry later", "")
		return
	}
	now := time.Now()
	e.Enrolled.Put(req.Client, value, now)
	exp := now.Add(e.Auth.cfg.CredentialTTL)
	var id [8]byte
	_, _ = rand.Read(id[:])
	token, err := schema.SignCredential(schema.Credential{ID: hex.EncodeToString(id[:]), Client: req.Client, Name: req.Name, Site: e.Site,
		Key: req.PublicKey, Issued: now.UnixMilli(), Expires: exp.UnixMilli()}, e.Auth.key)
	if err != nil {
		writeError(w, http.StatusInternalServerError, schema.CodeInternal, "cannot sign the credential", "")
		return
	}
	if e.Log != nil {
		e.Log.Info("client enrolled", "client", req.Client, "expires", exp.UTC().Format(time.RFC3339))
	}
	writeJSON(w, http.StatusOK, schema.EnrollResponse{Credential: token, Expires: time.UnixMilli(exp.UnixMilli()).UTC()})
}

// rotation reports whether the request is signed with a valid credential of client's
// current key (the signature covers the request's credential header: there is no body copy).
func (e *Enroller) rotation(r *http.Request, client string, current []byte) bool {
	token := r.Header.Get(schema.HeaderCredential)
	cred, err := schema.ParseCredential(token, e.Auth.PublicKey(), time.Now())
	return err == nil && cred.Client == client && bytes.Equal(cred.Key, current) &&
		schema.VerifyBody(cred.Key, []byte(token), r.Header.Get(schema.HeaderSignature))
}

// RevokeRequest is the body of POST /v1/revoke.
type RevokeRequest struct {
	Client string `json:"client"`
}

// ServeRevoke handles POST /v1/revoke: every credential of the client issued until now is
// refused from now on, and its id may be enrolled again. Guard it with RequireBearer.
func (e *Enroller) ServeRevoke(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || req.Client == "" {
		writeError(w, http.StatusBadRequest, schema.CodeMalformed, "want {\"client\": ID}", "client")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	now := time.Now()
	// The revocation first: once it is acknowledged no old credential passes, whatever happens
	// to the release of the id.
	err := e.Revocations.WriteMessages(ctx, kafkago.Message{Key: []byte(req.Client), Value: []byte(fmt.Sprintf(`{"client":%q,"at":%q}`, req.Client, now.UTC().Format(time.RFC3339Nano))), Time: now})
	if err == nil {
		err = e.Enrollments.WriteMessages(ctx, kafkago.Message{Key: []byte(req.Client)}) // tombstone: the id is free
	}
	if err == nil {
		e.Enrolled.Put(req.Client, nil, now)
	}
	if err != nil {
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, schema.CodeUnavailable, "the broker did not acknowledge the revocation; retry", "")
		return
	}
	if e.Log != nil {
		e.Log.Info("client revoked", "client", req.Client)
	}
	writeJSON(w, http.StatusOK, map[string]any{"client": req.Client, "revoked_at": now.UTC()})
}

// RequireBearer guards an administrative handler: with a token set, requests must carry
// Authorization: Bearer <token> (401 otherwise); an empty token leaves it open.
func RequireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !bearer(r, token) {
			writeError(w, http.StatusUnauthorized, schema.CodeUnauthenticated, "this endpoint needs the administrator token (Authorization: Bearer)", "Authorization")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer reports whether r carries Authorization: Bearer token.
func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, schema.ErrorBody{Error: schema.ErrorDetail{Code: code, Message: msg, Field: field}})
}
