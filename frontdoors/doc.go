// Package frontdoors holds the proxy configurations that put jwt-authz's HTTP decision face
// (forwardauth) behind each front door: Envoy http_service (envoy-http.yaml), nginx
// auth_request (nginx.conf), Caddy forward_auth (Caddyfile) and Traefik forwardAuth
// (traefik-dynamic.yaml), with the jwt-authz config they share (jwt-authz.yaml). Its tests run
// each real proxy on 127.0.0.1 with these very files, ports rewritten.
package frontdoors
