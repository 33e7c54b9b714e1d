package extauthz

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The decision log: one JSON line per decision, in the shape slog's JSON handler writes
// (time, level, msg, then the fields), encoded here by hand into a pooled buffer and handed
// to the writer in one Write. Through slog, a logged decision cost more CPU than a cached
// decision itself (docs/benchmarks.md, the default-log row); with a batching writer
// (internal/linewriter) logging every allow costs the encoding (about 0.2 µs: the time
// text is cached per second, and strings are scanned eight bytes at a time) and the write
// of the line's bytes.

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
	b = appendTime(b, now)
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

// secondText is the text of one second in time.RFC3339Nano, split around the fraction:
// "2006-01-02T15:04:05" and the zone ("Z" or "+01:00").
type secondText struct {
	unix       int64
	loc        *time.Location
	head, zone string
}

// lastSecond caches the text of the second most recently logged: formatting a time costs
// about as much as encoding all the decision's fields, and every line of a busy second
// shares its date, clock and zone.
var lastSecond atomic.Pointer[secondText]

// appendTime appends t as time.RFC3339Nano does (the fraction without trailing zeros, no
// dot for a whole second), from the cached text of t's second when it is the last one.
func appendTime(b []byte, t time.Time) []byte {
	unix := t.Unix()
	st := lastSecond.Load()
	if st == nil || st.unix != unix || st.loc != t.Location() {
		// A zone's offset changes only on a whole second, so one second has one text.
		whole := t.Truncate(time.Second).Format(time.RFC3339Nano)
		const headLen = len("2006-01-02T15:04:05")
		if len(whole) <= headLen || whole[headLen] != 'Z' && whole[headLen] != '+' && whole[headLen] != '-' {
			return t.AppendFormat(b, time.RFC3339Nano) // a year outside 0000-9999
		}
		st = &secondText{unix: unix, loc: t.Location(), head: whole[:headLen], zone: whole[headLen:]}
		lastSecond.Store(st)
	}
	b = append(b, st.head...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, st.zone...)
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
	plain := plainPrefix(s)
	if plain == len(s) { // the usual case: nothing to escape
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := plain; i < len(s); {
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

// plainPrefix is the length of s's longest prefix of printable ASCII other than '"' and
// '\\': bytes a JSON string holds as they are. It tests eight bytes at a time.
func plainPrefix(s string) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// A byte is flagged (its high bit set) if it is >= 0x80, < 0x20, '"' or '\\'; the
		// zero-byte test may flag a byte above a flagged one, which only ends the run early.
		quote, backslash := w^(ones*'"'), w^(ones*'\\')
		if (w|(w-ones*0x20)|(quote-ones)&^quote|(backslash-ones)&^backslash)&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
	}
	return i
}
