package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/statepipe/statepipe/schema"
)

// Timeouts of the client talking to statepipe. A report waiting for a hierarchy (wait=true)
// answers within 30 s, and so does analyst SQL (--sql.timeout 30s): an answer may take that
// long after its headers, never longer than requestTimeout in all.
const (
	dialTimeout    = 5 * time.Second
	headerTimeout  = 45 * time.Second
	requestTimeout = 60 * time.Second
	maxAnswerBytes = 128 << 20 // --sql.max-result-bytes is 64 MiB of values; JSON adds punctuation
)

// client talks to one statepipe site over its HTTP API: reports and /v1/sql only.
type client struct {
	base  *url.URL // scheme://host[:port][/prefix], no trailing slash
	token string
	http  *http.Client
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   dialTimeout,
			ResponseHeaderTimeout: headerTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
		},
		// statepipe never redirects; following one would send the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// parseBaseURL judges the datasource's URL: http or https, a host, no query.
func parseBaseURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("the URL is empty: set it to the statepipe site's HTTP address, e.g. http://statepipe:8081")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the URL %q is malformed: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("the URL %q must start with http:// or https://", raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("the URL %q names no host", raw)
	}
	if u.User != nil {
		// jsonData (and so the URL) is readable by every user of the organisation, and shown in
		// messages: a secret goes in the token, which Grafana keeps encrypted.
		return nil, fmt.Errorf("the URL %s must not carry a user or password: give the reader token in Token", redactURL(u))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("the URL %q must not carry a query or fragment: give the site's address only", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// redactURL is u without its user information.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("xxxxx")
	}
	return c.String()
}

// redact hides the token wherever an answer echoes it (a proxy's error page dumping the
// request's headers) before it goes into an error, a frame or a message.
func (c *client) redact(s string) string {
	if len(c.token) < 4 {
		return s
	}
	return strings.ReplaceAll(s, c.token, "[token]")
}

// apiError is a statepipe answer other than 2xx, or an answer that is not statepipe's.
type apiError struct {
	Status  int
	Code    string // statepipe's error code; "" when the body was not statepipe's error JSON
	Message string
	Field   string
	Request string // e.g. GET /v1/reports/compliance?list=L
}

func (e *apiError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s answered HTTP %d, not a statepipe answer (is the URL a statepipe site?): %s", e.Request, e.Status, e.Message)
	}
	if e.Field != "" {
		return fmt.Sprintf("statepipe refused %s: %d %s, field %s: %s", e.Request, e.Status, e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("statepipe refused %s: %d %s: %s", e.Request, e.Status, e.Code, e.Message)
}

// status maps a statepipe status to the SDK's.
func (e *apiError) status() backend.Status {
	switch e.Status {
	case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
		return backend.StatusBadRequest
	case http.StatusUnauthorized:
		return backend.StatusUnauthorized
	case http.StatusForbidden:
		return backend.StatusForbidden
	case http.StatusNotFound:
		return backend.StatusNotFound
	case http.StatusTooManyRequests:
		return backend.StatusTooManyRequests
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return backend.StatusTimeout
	}
	return backend.StatusBadGateway
}

// transportError is a request that got no answer: the site is unreachable or too slow.
type transportError struct {
	Request string
	Err     error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("cannot reach statepipe (%s): %v", e.Request, e.Err)
}

func (e *transportError) Unwrap() error { return e.Err }

func (e *transportError) timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// notJSONError is a 2xx answer that is not the JSON statepipe answers.
type notJSONError struct {
	Request string
	Err     error
}

func (e *notJSONError) Error() string {
	return fmt.Sprintf("%s answered something that is not statepipe's JSON (is the URL a statepipe site?): %v", e.Request, e.Err)
}

// busyRetries is how often a request answered 503 (statepipe's SQL runs --sql.max-concurrent
// statements at once, 2 by default, and refuses the rest with a Retry-After; a dashboard
// opened by two people sends more) is sent again, after the Retry-After it names (at most
// busyMaxWait, 1 s when it names none), within the request's context.
const (
	busyRetries = 4
	busyMaxWait = 5 * time.Second
)

// requestBudget bounds a request with its retries: a site answering 503 slowly, again and
// again, must not hold a query (and the queries after it) for busyRetries+1 times
// requestTimeout.
var requestBudget = requestTimeout

// do sends a request and decodes a 2xx JSON answer into out; it returns the request as it
// is named in errors and in frames' executedQueryString (method, path and query, no host).
// A 503 is sent again, busyRetries times at most, all within requestBudget.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body []byte, out any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, requestBudget)
	defer cancel()
	for attempt := 0; ; attempt++ {
		shown, wait, err := c.once(ctx, method, path, query, body, out)
		var ae *apiError
		if attempt >= busyRetries || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			return shown, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return shown, err // the retry could not be answered in time: say the site is busy now
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return shown, err
		case <-t.C:
		}
	}
}

// retryAfter reads a 503's Retry-After in seconds: 1 s when absent or unreadable, at most
// busyMaxWait.
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || secs < 1 {
		return time.Second
	}
	return min(time.Duration(secs)*time.Second, busyMaxWait)
}

// once sends the request once; wait is how long an answer other than 2xx asked to wait
// (Retry-After).
func (c *client) once(ctx context.Context, method, path string, query url.Values, body []byte, out any) (shown string, wait time.Duration, err error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	shown = method + " " + path
	if u.RawQuery != "" {
		shown += "?" + u.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return shown, wait, fmt.Errorf("cannot build the request %s: %w", shown, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "statepipe-grafana-datasource")
	if body != nil {
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return shown, wait, &transportError{Request: shown, Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return shown, wait, &transportError{Request: shown, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(data) > maxAnswerBytes {
		return shown, wait, fmt.Errorf("the answer to %s is larger than %d MiB", shown, maxAnswerBytes>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		wait = retryAfter(resp.Header)
		ae := &apiError{Status: resp.StatusCode, Request: shown}
		var eb schema.ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			ae.Code, ae.Message, ae.Field = eb.Error.Code, eb.Error.Message, eb.Error.Field
		} else if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			ae.Message = fmt.Sprintf("it redirects to %s, and a statepipe site never redirects (the redirect is not followed: it would take the token elsewhere); if that is the site's own address (https), set the URL to it", loc)
		} else {
			ae.Message = c.snippet(data)
		}
		ae.Message = c.redact(ae.Message)
		return shown, wait, ae
	}
	if err := json.Unmarshal(data, out); err != nil {
		return shown, wait, &notJSONError{Request: shown, Err: fmt.Errorf("%v (answer begins %q)", err, c.snippet(data))}
	}
	return shown, wait, nil
}

// snippet is the beginning of an answer for a message, the token hidden before it is cut (a
// token cut in two would not be found).
func (c *client) snippet(b []byte) string {
	if len(b) > 64<<10 {
		b = b[:64<<10]
	}
	return snippet([]byte(c.redact(string(b))))
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
