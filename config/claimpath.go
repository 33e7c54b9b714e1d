package config

import (
	"errors"
	"fmt"
	"strings"
)

// ClaimPath is a parsed claim path, as written in claims_to_headers and require.claims.
//
// Two forms are accepted. A path that starts with "/" is a JSON Pointer (RFC 6901): its
// segments are taken literally after "~1" -> "/" and "~0" -> "~", so it reaches any member,
// including names that hold dots or slashes ("/resource_access/billing.example.com/roles").
// Any other path is the dotted form ("realm_access.roles"): the whole path is first looked
// up as one top-level name (namespaced claims such as "https://example.com/roles"), then
// split at every dot.
type ClaimPath struct {
	// Whole is the dotted path as one top-level name; empty for a JSON Pointer.
	Whole string
	// Segments are the member names from the root.
	Segments []string
}

// ErrClaimPath marks a claim path that can never match a claim.
var ErrClaimPath = errors.New("config: claim path can never match")

// ParseClaimPath parses one claim path. It refuses paths that can never match: empty ones,
// a JSON Pointer with a "~" not followed by 0 or 1 (RFC 6901 §3), and a dotted path with a
// backslash, which is no escape in the dotted form (use a JSON Pointer to reach a name with
// dots).
func ParseClaimPath(path string) (ClaimPath, error) {
	switch {
	case path == "":
		return ClaimPath{}, fmt.Errorf("empty: %w", ErrClaimPath)
	case strings.HasPrefix(path, "/"):
		var segs []string
		for seg := range strings.SplitSeq(path[1:], "/") {
			for i := 0; i < len(seg); i++ {
				if seg[i] == '~' && (i+1 == len(seg) || (seg[i+1] != '0' && seg[i+1] != '1')) {
					return ClaimPath{}, fmt.Errorf("JSON Pointer %q: \"~\" must be followed by 0 or 1 (RFC 6901): %w", path, ErrClaimPath)
				}
			}
			// RFC 6901 §4: ~1 first, then ~0, so "~01" is "~1" and not "/".
			segs = append(segs, strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~"))
		}
		return ClaimPath{Segments: segs}, nil
	case strings.Contains(path, `\`):
		return ClaimPath{}, fmt.Errorf("%q: a backslash escapes nothing in a dotted path; write a JSON Pointer such as \"/resource_access/billing.example.com/roles\": %w", path, ErrClaimPath)
	}
	return ClaimPath{Whole: path, Segments: strings.Split(path, ".")}, nil
}

// Lookup finds the claim at the path in a decoded JSON object.
func (p ClaimPath) Lookup(claims map[string]any) (any, bool) {
	if p.Whole != "" {
		if v, ok := claims[p.Whole]; ok {
			return v, true
		}
	}
	if len(p.Segments) == 0 {
		return nil, false
	}
	var cur any = claims
	for _, seg := range p.Segments {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return cur, true
}
