package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var logged = Decision{
	Allowed: true, Reason: ReasonAllowed, HTTPStatus: 200, Rule: "api", Provider: "demo",
	Issuer: "https://issuer.example", Subject: "alice \"the\" <admin>\n\t\x01\u2028é\xff", KID: "ec256",
	Cached: true, Method: "GET", Path: "/api/items", RequestID: "5d1f0c7e", Front: FrontGRPC,
	CELError: "no such key: \"x\"",
}

// slogDecision is the decision line as slog's JSON handler writes it: the shape the hand
// encoder keeps.
func slogDecision(log *slog.Logger, d Decision, elapsed time.Duration) {
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	attrs := []slog.Attr{slog.String("decision", decision), slog.String("reason", string(d.Reason)),
		slog.Int("status", d.HTTPStatus), slog.String("rule", d.Rule), slog.String("provider", d.Provider),
		slog.String("iss", d.Issuer), slog.String("sub", d.Subject), slog.String("kid", d.KID),
		slog.Bool("cached", d.Cached), slog.String("method", d.Method), slog.String("path", d.Path),
		slog.Duration("duration", elapsed), slog.String("x-request-id", d.RequestID), slog.String("front", string(d.Front))}
	if d.CELError != "" {
		attrs = append(attrs, slog.String("cel_error", d.CELError))
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, "decision", attrs...)
}

// TestDecisionLineAsSlog: the hand-encoded line decodes to what slog's JSON handler writes
// for the same decision, so log pipelines see no change.
func TestDecisionLineAsSlog(t *testing.T) {
	var want, got bytes.Buffer
	slogDecision(slog.New(slog.NewJSONHandler(&want, nil)), logged, 1234*time.Microsecond)
	writeDecision(&got, time.Now(), logged, 1234*time.Microsecond)
	if bytes.Count(got.Bytes(), []byte("\n")) != 1 || !bytes.HasSuffix(got.Bytes(), []byte("\n")) {
		t.Fatalf("writeDecision wrote %q, want one line", got.String())
	}
	decode := func(b []byte) map[string]any {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
			t.Errorf("time %v: %v", m["time"], err)
		}
		delete(m, "time")
		return m
	}
	if diff := cmp.Diff(decode(want.Bytes()), decode(got.Bytes())); diff != "" {
		t.Errorf("writeDecision line differs from slog's (-slog +ours):\n%s", diff)
	}
}

// FuzzDecisionLine: whatever the request and token carried, the line is one valid JSON
// object whose strings decode to what encoding/json makes of them.
func FuzzDecisionLine(f *testing.F) {
	f.Add("alice", "/api", "id-1")
	f.Add("\"\\\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029\U0001F600")
	f.Add("\xed\xa0\x80", "é", "\xc3")
	f.Fuzz(func(t *testing.T, sub, path, id string) {
		d := logged
		d.Subject, d.Path, d.RequestID = sub, path, id
		line := appendDecision(nil, time.Now(), d, time.Millisecond)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line %q is not one line", line)
		}
		var got struct {
			Sub  string `json:"sub"`
			Path string `json:"path"`
			ID   string `json:"x-request-id"`
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		for _, c := range []struct{ in, out string }{{sub, got.Sub}, {path, got.Path}, {id, got.ID}} {
			if want := viaEncodingJSON(t, c.in); c.out != want {
				t.Errorf("%q logged as %q, want %q", c.in, c.out, want)
			}
		}
	})
}

func viaEncodingJSON(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkDecisionLog compares a decision line through slog with the hand encoder (both
// to io.Discard: the encoding alone).
func BenchmarkDecisionLog(b *testing.B) {
	b.Run("slog", func(b *testing.B) {
		log := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			slogDecision(log, logged, time.Millisecond)
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			writeDecision(io.Discard, time.Now(), logged, time.Millisecond)
		}
	})
}

// FuzzDecisionTime: the cached second's text gives what time.RFC3339Nano gives, in any zone,
// for whole seconds and for every fraction, one second after another.
func FuzzDecisionTime(f *testing.F) {
	f.Add(int64(1796400000), int64(0), 0)
	f.Add(int64(1796400000), int64(123456789), 3600)
	f.Add(int64(1796400059), int64(100), -34200)
	f.Add(int64(-62135596800), int64(5), 0) // year 1
	f.Add(int64(253402300800), int64(5), 0) // year 10000
	f.Fuzz(func(t *testing.T, sec, nsec int64, offset int) {
		zones := []*time.Location{time.UTC, time.Local, time.FixedZone("fuzz", offset%(24*3600))}
		for _, loc := range zones {
			for _, at := range []time.Time{time.Unix(sec, nsec).In(loc), time.Unix(sec, nsec+1).In(loc), time.Unix(sec+1, 0).In(loc)} {
				if got, want := string(appendTime(nil, at)), at.Format(time.RFC3339Nano); got != want {
					t.Fatalf("appendTime(%v) = %q, want %q", at, got, want)
				}
			}
		}
	})
}

// FuzzPlainPrefix: the word-at-a-time scan stops exactly where a byte-at-a-time one does.
func FuzzPlainPrefix(f *testing.F) {
	f.Add("https://issuer.example/realms/a")
	f.Add("0123456\"89abcdef")
	f.Add("01234567\\9abcdef\x00")
	f.Add("abcdefg\x1fhij\x7f~ é")
	f.Fuzz(func(t *testing.T, s string) {
		want := 0
		for want < len(s) && s[want] >= 0x20 && s[want] < 0x80 && s[want] != '"' && s[want] != '\\' {
			want++
		}
		if got := plainPrefix(s); got != want {
			t.Fatalf("plainPrefix(%q) = %d, want %d", s, got, want)
		}
	})
}
