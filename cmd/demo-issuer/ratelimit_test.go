package main

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(6, clock.now) // a burst of 6, then one every 10s
	steps := []struct {
		name      string
		advance   time.Duration
		key       string
		wantOK    bool
		wantRetry time.Duration
	}{
		{"1st", 0, "a", true, 0},
		{"2nd", 0, "a", true, 0},
		{"3rd", 0, "a", true, 0},
		{"4th", 0, "a", true, 0},
		{"5th", 0, "a", true, 0},
		{"6th", 0, "a", true, 0},
		{"7th is refused", 0, "a", false, 10 * time.Second},
		{"other key unaffected", 0, "b", true, 0},
		{"still refused 4s later", 4 * time.Second, "a", false, 6 * time.Second},
		{"one token back after 10s", 6 * time.Second, "a", true, 0},
		{"and only one", 0, "a", false, 10 * time.Second},
	}
	for _, s := range steps {
		clock.advance(s.advance)
		ok, retry := l.allow(s.key)
		if ok != s.wantOK || retry != s.wantRetry {
			t.Errorf("%s: allow(%q) = %v, %s; want %v, %s", s.name, s.key, ok, retry, s.wantOK, s.wantRetry)
		}
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiter(1, clock.now)
	l.maxKeys = 2
	for _, k := range []string{"a", "b"} {
		if ok, _ := l.allow(k); !ok {
			t.Fatalf("allow(%q) = false, want true", k)
		}
	}
	if ok, _ := l.allow("c"); ok {
		t.Errorf("allow(c) with the table full of active keys = true, want false")
	}
	clock.advance(time.Minute) // a and b have refilled and can be forgotten
	if ok, _ := l.allow("c"); !ok {
		t.Errorf("allow(c) after the others refilled = false, want true")
	}
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after the sweep, want 1", len(l.buckets))
	}
}

func TestLimiterDisabled(t *testing.T) {
	l := newLimiter(0, time.Now)
	for range 100 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatal("allow with limit 0 = false, want true")
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {12 * time.Second, 12}} {
		if got := retryAfterSeconds(tt.d); got != tt.want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestClientKey(t *testing.T) {
	trusted, err := parsePrefixes("10.0.0.0/8, 127.0.0.1, fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"no proxy", "192.0.2.7:5555", nil, "192.0.2.7"},
		{"untrusted peer's XFF ignored", "192.0.2.7:5555", []string{"198.51.100.1"}, "192.0.2.7"},
		{"trusted peer, last hop", "10.1.2.3:5555", []string{"203.0.113.9, 198.51.100.1"}, "198.51.100.1"},
		{"trusted peer, last header", "10.1.2.3:5555", []string{"203.0.113.9", "198.51.100.2"}, "198.51.100.2"},
		{"trusted peer, no XFF", "10.1.2.3:5555", nil, "10.1.2.3"},
		{"trusted peer, garbage XFF", "10.1.2.3:5555", []string{"not-an-ip"}, "10.1.2.3"},
		{"trusted single address", "127.0.0.1:5555", []string{"198.51.100.3"}, "198.51.100.3"},
		{"127.0.0.2 is not 127.0.0.1", "127.0.0.2:5555", []string{"198.51.100.3"}, "127.0.0.2"},
		{"IPv6 keyed by /64", "[2001:db8:1:2:3:4:5:6]:5555", nil, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6", "[::ffff:192.0.2.8]:5555", nil, "192.0.2.8"},
		{"trusted IPv6 proxy", "[fd00::1]:5555", []string{"2001:db8::9"}, "2001:db8::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/login", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientKey(r, trusted); got != tt.want {
				t.Errorf("clientKey(RemoteAddr %s, XFF %q) = %q, want %q", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := parsePrefixes(" 10.0.0.1/8 ,,::1")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parsePrefixes = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.0/8/8"} {
		if _, err := parsePrefixes(bad); err == nil {
			t.Errorf("parsePrefixes(%q) = nil error, want an error", bad)
		}
	}
}
