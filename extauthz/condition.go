package extauthz

import (
	"net/url"
	"strings"
	"time"

	"github.com/jwt-authz/jwt-authz/condition"
)

// celRequest shows a request to CEL conditions (condition.Request). Maps are built only
// when an expression reads them.
type celRequest struct{ r *request }

var _ condition.Request = celRequest{}

func (c celRequest) Method() string               { return c.r.method }
func (c celRequest) Path() string                 { return c.r.matchPath }
func (c celRequest) Host() string                 { return c.r.host }
func (c celRequest) SourcePrincipal() string      { return c.r.sourcePrincipal }
func (c celRequest) DestinationPrincipal() string { return c.r.destinationPrincipal }

// Header is the named header (lower case), repeated ones joined with ",".
func (c celRequest) Header(name string) (string, bool) {
	if strings.HasPrefix(name, ":") {
		return "", false
	}
	if !c.r.raw {
		v, n := c.r.header(name)
		return v, n > 0
	}
	var joined string
	n := 0
	c.r.headerValues(name, func(v string) bool {
		if n == 0 {
			joined = v
		} else {
			joined += "," + v
		}
		n++
		return true
	})
	return joined, n > 0
}

// Headers are keyed by lower-case name; repeated headers are joined with "," as Envoy joins
// them in the headers encoding, so both encodings look the same to an expression.
// Pseudo-headers (":path") are left out: request.path and request.host are their
// normalised forms.
func (c celRequest) Headers() map[string]string {
	m := make(map[string]string, len(c.r.headers))
	for _, h := range c.r.headers {
		if strings.HasPrefix(h.name, ":") {
			continue
		}
		name := strings.ToLower(h.name)
		if prev, ok := m[name]; ok && c.r.raw {
			m[name] = prev + "," + h.value
			continue
		}
		m[name] = h.value
	}
	return m
}

// Query is the decoded query string; a repeated parameter shows its first value. A query
// that does not decode shows what did.
func (c celRequest) Query() map[string]string {
	vals, _ := url.ParseQuery(c.r.query)
	m := make(map[string]string, len(vals))
	for k, v := range vals {
		m[k] = v[0]
	}
	return m
}

func (c celRequest) ContextExtensions() map[string]string {
	m := make(map[string]string, len(c.r.contextEx))
	for _, e := range c.r.contextEx { // the last of a repeated key wins, as protobuf decodes a map
		m[e.name] = e.value
	}
	return m
}

// evalCEL runs prg against the request and, after verification, the token's claims
// (nil before). A false result and an error are both refusals; the error is also returned
// so the caller can report it.
func evalCEL(prg *condition.Program, r *request, claims *condition.Claims, now time.Time) (bool, error) {
	return prg.Eval(&condition.Input{Request: celRequest{r}, Claims: claims, Now: now})
}

// celErrorText describes an evaluation error for the log without any value the expression
// saw: CEL messages can quote a header or claim value ("type conversion error from ..."),
// and a header may be a credential. Only the kind of error is kept.
func celErrorText(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "cost limit exceeded") {
		return "cost limit exceeded"
	}
	if i := strings.IndexAny(msg, ":'\""); i >= 0 {
		msg = msg[:i]
	}
	return truncate(strings.TrimSpace(msg), 64)
}
