package main

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

// The demo web page: plain HTML and one script, embedded, no build step. The same page is
// served twice: on the public listener, which Envoy routes at "/" and "/web/" (so the page
// and the API share one origin), and on -web-addr, another origin whose copy calls the API
// at -api-origin across origins to show CORS and the CSRF defence.

//go:embed web
var webFiles embed.FS

var indexPage = template.Must(template.ParseFS(webFiles, "web/index.html"))

// webPage serves index.html at "/" and the assets under "/web/". apiOrigin is where the
// page's script sends its API calls: "" for its own origin.
type webPage struct {
	index []byte
	csp   string
}

func newWebPage(apiOrigin string, cookieSessions bool) (*webPage, error) {
	var b bytes.Buffer
	err := indexPage.Execute(&b, struct {
		APIOrigin string
		Cookie    bool
	}{apiOrigin, cookieSessions && apiOrigin == ""})
	if err != nil {
		return nil, err
	}
	// Scripts and styles only from the page's own origin; API calls to it and apiOrigin.
	connect := "'self'"
	if apiOrigin != "" {
		connect += " " + apiOrigin
	}
	csp := strings.Join([]string{
		"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"connect-src " + connect, "form-action " + connect,
		"frame-ancestors 'none'", "base-uri 'none'",
	}, "; ")
	return &webPage{index: b.Bytes(), csp: csp}, nil
}

func (p *webPage) register(mux *http.ServeMux) {
	assets, _ := fs.Sub(webFiles, "web") // cannot fail: "web" is embedded
	static := http.StripPrefix("/web/", http.FileServerFS(assets))
	mux.HandleFunc("GET /{$}", p.serveIndex)
	mux.HandleFunc("GET /web/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/web/index.html" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // the page itself lives at "/", rendered; no listings
			return
		}
		p.securityHeaders(w)
		static.ServeHTTP(w, r)
	})
}

func (p *webPage) serveIndex(w http.ResponseWriter, _ *http.Request) {
	p.securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(p.index)
}

func (p *webPage) securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", p.csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
}
