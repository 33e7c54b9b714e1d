package introspect

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/jwt-authz/jwt-authz/config"
)

// discoveryMaxBytes caps the discovery document.
const discoveryMaxBytes = 256 << 10

// endpointURL is the configured endpoint or, without one, the introspection_endpoint of
// the issuer's OpenID Provider Configuration, fetched at first use and kept once it is
// found (a failure is retried by the next check).
func (c *Client) endpointURL(ctx context.Context) (string, error) {
	c.mu.Lock()
	ep := c.endpoint
	c.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	v, err, _ := c.flight.Do("\x00discovery", func() (any, error) { return c.discover(ctx) })
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.endpoint = v.(string)
	c.mu.Unlock()
	return v.(string), nil
}

// discover reads introspection_endpoint from {issuer}/.well-known/openid-configuration
// (OpenID Connect Discovery 1.0 §4; RFC 8414 names the same member). The document must name
// the issuer it was asked for, and the endpoint must be https (http only on loopback).
func (c *Client) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(c.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%w: discovery %s: status %d", ErrUnavailable, u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, discoveryMaxBytes+1))
	if err != nil || len(body) > discoveryMaxBytes {
		return "", fmt.Errorf("%w: discovery %s: unreadable or larger than %d bytes", ErrUnavailable, u, discoveryMaxBytes)
	}
	var doc struct {
		Issuer   string `json:"issuer"`
		Endpoint string `json:"introspection_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%w: discovery %s: %v", ErrUnavailable, u, err)
	}
	if doc.Issuer != c.issuer {
		return "", fmt.Errorf("%w: discovery %s names issuer %q", ErrUnavailable, u, truncate(doc.Issuer, 128))
	}
	ep, err := url.Parse(doc.Endpoint)
	if doc.Endpoint == "" || err != nil || ep.Host == "" || ep.User != nil || !config.SecureURL(ep) {
		return "", fmt.Errorf("%w: discovery %s: introspection_endpoint %q is missing or not https", ErrUnavailable, u, truncate(doc.Endpoint, 128))
	}
	return doc.Endpoint, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
