package extauthz

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The decision log: one JSON line per decision, in the shape slog's JSON handler writes
// (time, level, msg, then the fields), encoded here by hand into a pooled buffer and handed
// to the writer in one Write. Through slog, a logged decision cost more CPU than a cached
// decision itself (docs/benchmarks.md, the default-log row); with a batching writer
// (internal/linewriter) logging every allow is close to free.

// linePool holds line buffers; a line is a few hundred bytes.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// writeDecision writes d as one line to w. It never sees the token.
func writeDecision(w io.Writer, now time.Time, d Decision, elapsed time.Duration) {
	bp := linePool.Get().(*[]byte)
	b := appendDecision((*bp)[:0], now, d, elapsed)
	w.Write(b) // a lost log line must not change the decision
	*bp = b
	linePool.Put(bp)
}

// appendDecision appends d's log line, newline included.
func appendDecision(b []byte, now time.Time, d Decision, elapsed time.Duration) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"decision","decision":`...)
	if d.Allowed {
		b = append(b, `"allow"`...)
	} else {
		b = append(b, `"deny"`...)
	}
	b = appendField(b, "reason", string(d.Reason))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(d.HTTPStatus), 10)
	b = appendField(b, "rule", d.Rule)
	b = appendField(b, "provider", d.Provider)
	// Every field a client or a token chooses is clipped (logfields.go); rule, provider,
	// reason and front come from the configuration and the code.
	b = appendField(b, "iss", clipField(d.Issuer))
	b = appendField(b, "sub", clipField(d.Subject))
	b = appendField(b, "kid", clipField(d.KID))
	b = append(b, `,"cached":`...)
	b = strconv.AppendBool(b, d.Cached)
	b = appendField(b, "method", clipField(d.Method))
	b = appendField(b, "path", clipPath(d.Path))
	b = append(b, `,"duration":`...) // nanoseconds, as slog writes a time.Duration
	b = strconv.AppendInt(b, int64(elapsed), 10)
	b = appendField(b, "x-request-id", clipField(d.RequestID))
	b = appendField(b, "front", string(d.Front))
	if d.CELError != "" {
		b = appendField(b, "cel_error", d.CELError)
	}
	if d.ShadowDecision != "" {
		b = appendField(b, "shadow_decision", d.ShadowDecision)
		b = appendField(b, "shadow_reason", string(d.ShadowReason))
		b = appendField(b, "shadow_rule", d.ShadowRule)
	}
	return append(b, "}\n"...)
}

// appendField appends ,"key":"value"; key needs no escaping.
func appendField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONString(b, value)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (RFC 8259 §7). Bytes that are not UTF-8
// become U+FFFD, one per byte, as encoding/json does; U+2028 and U+2029 are escaped so a
// line is also a valid JavaScript string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
