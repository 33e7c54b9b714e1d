package probe

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGet(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		wantErr bool
	}{
		{name: "ok", status: http.StatusOK},
		{name: "not ready", status: http.StatusServiceUnavailable, wantErr: true},
		{name: "no content is not ok", status: http.StatusNoContent, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tt.status) }))
			defer srv.Close()
			if err := Get(srv.URL); (err != nil) != tt.wantErr {
				t.Errorf("Get(%d) = %v, want error %v", tt.status, err, tt.wantErr)
			}
		})
	}
	if err := Get("http://127.0.0.1:1/"); err == nil {
		t.Error("Get(closed port) = nil, want an error")
	}
}
