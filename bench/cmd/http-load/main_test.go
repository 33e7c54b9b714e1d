package main

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		status     int
		keepAlive  bool
		wantErr    bool
		restWanted string // what must be left for the next response
	}{
		{"200 with body", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\nNEXT", 200, true, false, "NEXT"},
		{"401 with JSON", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\nwww-authenticate: Bearer\r\n\r\n{}", 401, true, false, ""},
		{"connection close", "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", 200, false, false, ""},
		{"chunked refused", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", 0, false, true, ""},
		{"no length", "HTTP/1.1 200 OK\r\n\r\n", 0, false, true, ""},
		{"garbage", "SSH-2.0\r\n", 0, false, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			status, keepAlive, err := readResponse(br)
			if (err != nil) != tt.wantErr {
				t.Fatalf("readResponse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if status != tt.status || keepAlive != tt.keepAlive {
				t.Errorf("readResponse(%q) = %d, %v, want %d, %v", tt.in, status, keepAlive, tt.status, tt.keepAlive)
			}
			rest, _ := br.ReadString(0)
			if rest != tt.restWanted {
				t.Errorf("readResponse(%q) left %q, want %q", tt.in, rest, tt.restWanted)
			}
		})
	}
}
