package extauthz

import "strings"

// normalizePath returns the form of p that rules are matched against: percent-encoded
// unreserved characters decoded (RFC 3986 §6.2.2.2), other escapes upper-cased, repeated
// slashes merged and dot segments removed (§5.2.4). Envoy does much of this when the
// operator turns normalize_path and merge_slashes on; doing it here as well means a rule on
// /admin cannot be side-stepped with /%61dmin or /api/../admin when they are off. Encoded
// slashes (%2F) stay encoded: they are not segment separators.
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	if !needsNormalizing(p) {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			d := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(d) {
				b.WriteByte(d)
			} else {
				b.WriteByte('%')
				b.WriteByte(upper(p[i+1]))
				b.WriteByte(upper(p[i+2]))
			}
			i += 2
			continue
		}
		if c == '%' {
			// A '%' that starts no escape is data (RFC 3986 §2.4): written as %25, it
			// cannot join a decoded character into a new escape ("/%%361dmin" would
			// otherwise become "/%61dmin", an /admin that rules do not see).
			b.WriteString("%25")
			continue
		}
		b.WriteByte(c)
	}
	return removeDotSegments(b.String())
}

func needsNormalizing(p string) bool {
	return p[0] != '/' || strings.Contains(p, "%") || strings.Contains(p, "//") ||
		strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
}

// removeDotSegments resolves "." and ".." and merges empty segments; the result always
// starts with "/" and keeps a trailing slash.
func removeDotSegments(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case "", ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
