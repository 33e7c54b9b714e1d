package main

import (
	"encoding/json"
	"net/http"

	"github.com/jwt-authz/jwt-authz/config"
)

// resourceMetadataDocs are the RFC 9728 documents cfg has jwt-authz serve, by path.
func resourceMetadataDocs(cfg *config.Config) map[string][]byte {
	docs := map[string][]byte{}
	for _, p := range cfg.Providers {
		m := p.ResourceMetadata
		path := m.ServedPath()
		if path == "" {
			continue
		}
		// RFC 9728 §2: resource is required; the rest are omitted when empty.
		b, err := json.Marshal(m)
		if err != nil { // only strings and string lists: cannot fail
			continue
		}
		docs[path] = b
	}
	return docs
}

// serveResourceMetadata answers GET of a served metadata path with its document, from the
// configuration in force (a reload changes the answer), and 404 otherwise.
func (a *app) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	doc, ok := a.cur.Load().metadataDocs[r.URL.EscapedPath()]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	// Public by design (RFC 9728 §2): browser-based clients may fetch it cross-origin.
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "max-age=300")
	w.Write(doc)
}
