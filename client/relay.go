package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/statepipe/statepipe/schema"
)

// Relay posts ConfigMgr state message documents (one, or several concatenated or in a
// wrapper element; UTF-16 or UTF-8, as ConfigMgr wrote them) to POST /v1/configmgr/reports,
// signed with the client's identity — a gateway's (Config.Kind schema.KindGateway) — or
// unsigned without one, where the site accepts that.
//
// It retries, as Send does, while the site's answer is temporary: 429, 503 and 5xx, and a 207
// whose refused documents were all refused for a temporary reason. Sending a document again
// is safe: the site takes an identical document as a duplicate. It renews an expired
// credential once. It returns the site's last answer, and an error when a document was
// refused for good (the answer says which and why) or the tries ran out.
func (c *Client) Relay(ctx context.Context, body []byte) (*schema.ConfigMgrAnswer, error) {
	var answer *schema.ConfigMgrAnswer
	renewed := false
	err := c.retry(ctx, func() (time.Duration, error) {
		a, status, wait, err := c.postRelay(ctx, body)
		answer = a
		var apiErr *APIError
		switch {
		case err == nil && status == http.StatusOK:
			return 0, nil
		case errors.As(err, &apiErr): // refused before the documents were read
		case err != nil:
			return 0, err
		default:
			apiErr = &APIError{Status: status, RetryAfter: wait}
			if a.Error != nil {
				apiErr.ErrorDetail = *a.Error
			}
		}
		if status == http.StatusMultiStatus {
			// Retry the whole body only when every refusal may pass later.
			apiErr.Status = http.StatusServiceUnavailable
			for _, d := range a.Documents {
				if d.Error != nil && !(&APIError{Status: d.Status}).Temporary() {
					apiErr.Status, apiErr.ErrorDetail = d.Status, *d.Error
					return 0, permanent{relayRefused(a, apiErr)}
				}
			}
		}
		if !renewed && c.renewable(apiErr) {
			renewed = true
			if rerr := c.enroll(ctx); rerr != nil {
				return 0, permanent{fmt.Errorf("%w (and enrolling again failed: %v)", apiErr, rerr)}
			}
			return 0, retryNow{apiErr}
		}
		if !apiErr.Temporary() {
			return 0, permanent{relayRefused(a, apiErr)}
		}
		return apiErr.RetryAfter, apiErr
	})
	if err != nil {
		return answer, fmt.Errorf("cannot relay: %w", err)
	}
	return answer, nil
}

// relayRefused describes an answer that refused documents for good.
func relayRefused(a *schema.ConfigMgrAnswer, first *APIError) error {
	if a.Accepted == 0 && len(a.Documents) <= 1 {
		return first
	}
	return fmt.Errorf("%d of %d documents refused, the first: %w", a.Refused, len(a.Documents), first)
}

// postRelay sends once: the answer (an error answer that is not the site's is an error), its
// status and the Retry-After.
func (c *Client) postRelay(ctx context.Context, body []byte) (*schema.ConfigMgrAnswer, int, time.Duration, error) {
	q := url.Values{}
	if c.cfg.Site != "" {
		q.Set("site", c.cfg.Site) // a listener of several sites routes by it
	}
	if c.cfg.WaitFolded {
		q.Set("wait", "true")
	}
	u := c.cfg.URL + "/v1/configmgr/reports"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/xml")
	if cred, sig := c.sign(body); cred != "" {
		req.Header.Set(schema.HeaderCredential, cred)
		req.Header.Set(schema.HeaderSignature, sig)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, 0, 0, err
	}
	var wait time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		wait = time.Duration(s) * time.Second
	}
	var a schema.ConfigMgrAnswer
	if err := json.Unmarshal(raw, &a); err != nil || (resp.StatusCode != http.StatusOK && a.Error == nil) {
		// Not a document answer: refused before the documents were read (credential, media
		// type, size), or not statepipe's.
		return &schema.ConfigMgrAnswer{}, resp.StatusCode, wait, apiError(resp, raw)
	}
	return &a, resp.StatusCode, wait, nil
}
