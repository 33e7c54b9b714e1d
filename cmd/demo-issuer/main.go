// Command demo-issuer is the demo's login service: POST /login with a username and a
// password from a users file gets a signed JWT, and the keys to verify it are published as
// a JWKS with OpenID Connect discovery, so jwt-authz (or any verifier) can be pointed at it.
//
//	demo-issuer -addr 127.0.0.1:8080 -issuer http://demo-issuer:8080 -audience demo-api \
//	            -users users.yaml [-key-file signing.pem] [-alg ES256|RS256] [-ttl 15m] \
//	            [-admin-addr 127.0.0.1:8081] [-rotate-every 0] [-publish-delay 0]
//	            [-cookie access_token] [-web-addr 127.0.0.1:8001 -api-origin http://127.0.0.1:8000]
//
// Public listener (-addr):
//
//	POST /login                            {"username","password"} -> {"access_token",...}
//	                                       with "cookie": true (and -cookie), in a cookie instead
//	POST /logout                           removes the session cookie
//	GET  /, /web/*                         the demo web page (Envoy routes these here)
//	GET  /.well-known/jwks.json            public keys, Cache-Control max-age=60, ETag
//	GET  /.well-known/openid-configuration discovery document
//	GET  /healthz                          200 while serving
//
// Web listener (-web-addr, off by default): the same demo page on another origin, calling the
// API at -api-origin across origins (CORS), and offering a cross-site form POST that
// jwt-authz refuses (CSRF).
//
// Admin listener (-admin-addr, off by default; keep it off any public network):
//
//	POST /rotate                           publish a new key, sign with it after -publish-delay
//	GET  /healthz
//
// Key rotation (POST /rotate, or every -rotate-every) publishes a new key in the JWKS at
// once, signs with it from -publish-delay later, and keeps the previous key published for
// -ttl after it stopped signing, so every token it signed verifies until it expires.
//
// It is a demo, not an identity provider: users live in a file, keys in memory (or one
// PEM file), and there are no refresh tokens, consent or sessions.
package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"github.com/jwt-authz/jwt-authz/internal/probe"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, "demo-issuer:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "demo-issuer:", err)
		os.Exit(1)
	}
}

// usageError is a problem with the command line (exit status 2).
type usageError struct{ error }

// config is the command line, checked.
type config struct {
	addr, adminAddr string
	webAddr         string // -web-addr: the page on a second origin
	apiOrigin       string // -api-origin: where that page sends API calls
	cookie          string // -cookie: session cookie name; "" disables cookie logins
	issuer          string
	audience        string
	usersFile       string
	keyFile         string
	alg             jose.SignatureAlgorithm
	algSet          bool // -alg was given, so a -key-file of another type is an error
	ttl             time.Duration
	rotateEvery     time.Duration
	publishDelay    time.Duration
	userLimit       int
	ipLimit         int
	trustedProxies  []netip.Prefix
	healthURL       string // -healthcheck: probe and exit
	encryptFile     string // -encrypt: the recipient's public key; "" signs only
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("demo-issuer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "public `host:port` for /login, the JWKS, discovery and /healthz")
	fs.StringVar(&c.webAddr, "web-addr", "", "`host:port` serving the demo page on a second origin, which calls the API at -api-origin; empty disables it")
	fs.StringVar(&c.apiOrigin, "api-origin", "", "the API's `origin` (scheme://host:port, Envoy's listener) for the page on -web-addr")
	fs.StringVar(&c.cookie, "cookie", "", "cookie `name` for logins that ask for a cookie session (HttpOnly; Secure; SameSite=Strict); empty disables them")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "admin `host:port` for POST /rotate; empty disables it")
	fs.StringVar(&c.issuer, "issuer", "", "the `URL` put in iss and at the base of the discovery document's URLs (required)")
	fs.StringVar(&c.audience, "audience", "", "the aud claim of every token (required)")
	fs.StringVar(&c.usersFile, "users", "", "users `file` (YAML or JSON) with bcrypt password hashes (required)")
	fs.StringVar(&c.keyFile, "key-file", "", "PEM `file` with the first signing key (PKCS#8, SEC1 or PKCS#1); default: generate one")
	alg := fs.String("alg", string(jose.ES256), "signing algorithm, ES256 (P-256) or RS256 (RSA 2048); with -key-file the key's type decides, and -alg, if given, must agree")
	fs.DurationVar(&c.ttl, "ttl", 15*time.Minute, "token lifetime; also how long a retired key stays in the JWKS")
	fs.DurationVar(&c.rotateEvery, "rotate-every", 0, "rotate the signing key this often; 0 rotates only on POST /rotate")
	fs.DurationVar(&c.publishDelay, "publish-delay", 0, "how long a new key is in the JWKS before it signs; 0 suits verifiers that refetch on an unknown kid "+
		"(jwt-authz does), others need at least the JWKS max-age (60s)")
	fs.IntVar(&c.userLimit, "user-limit", 5, "login attempts per minute per username; 0 disables")
	fs.IntVar(&c.ipLimit, "ip-limit", 20, "login attempts per minute per client address; 0 disables")
	proxies := fs.String("trusted-proxies", "", "comma-separated `CIDRs` of proxies whose X-Forwarded-For (last hop) names the client; default: none")
	fs.StringVar(&c.encryptFile, "encrypt", "", "PEM `file` with a public key (RSA, or EC P-256) to encrypt access tokens to: nested JWTs, a JWS inside a JWE; empty: signed only")
	fs.StringVar(&c.healthURL, "healthcheck", "", "GET this `URL` and exit 0 on 200 (container health checks); nothing else runs")
	if err := fs.Parse(args); err != nil {
		return c, err // flag has printed the error and the usage
	}
	if c.healthURL != "" {
		return c, nil
	}
	fs.Visit(func(f *flag.Flag) { c.algSet = c.algSet || f.Name == "alg" })
	c.alg = jose.SignatureAlgorithm(*alg)

	bad := func(format string, a ...any) (config, error) {
		return c, usageError{fmt.Errorf(format, a...)}
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case c.issuer == "":
		return bad("-issuer is required")
	case c.audience == "":
		return bad("-audience is required")
	case c.usersFile == "":
		return bad("-users is required")
	case c.alg != jose.ES256 && c.alg != jose.RS256:
		return bad("-alg %q: want ES256 or RS256", *alg)
	case c.ttl < time.Second:
		return bad("-ttl %s: must be at least 1s (exp has one-second resolution)", c.ttl)
	case c.publishDelay < 0:
		return bad("-publish-delay %s: must not be negative", c.publishDelay)
	case c.rotateEvery < 0 || (c.rotateEvery > 0 && c.rotateEvery <= c.publishDelay):
		return bad("-rotate-every %s: must be 0 or longer than -publish-delay (%s)", c.rotateEvery, c.publishDelay)
	case c.userLimit < 0 || c.ipLimit < 0:
		return bad("-user-limit and -ip-limit must not be negative")
	}
	if u, err := url.Parse(c.issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") ||
		u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return bad("-issuer %q: must be an absolute http(s) URL without query or fragment", c.issuer)
	}
	if (c.webAddr == "") != (c.apiOrigin == "") {
		return bad("-web-addr and -api-origin go together")
	}
	if u, err := url.Parse(c.apiOrigin); c.apiOrigin != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") ||
		u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
		return bad("-api-origin %q: want an origin such as http://127.0.0.1:8000 (no path)", c.apiOrigin)
	}
	if c.cookie != "" && !validCookieName(c.cookie) {
		return bad("-cookie %q: not a cookie name", c.cookie)
	}
	var err error
	if c.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return bad("-trusted-proxies: %v", err)
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.healthURL != "" {
		return probe.Get(cfg.healthURL)
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	users, err := loadUsers(cfg.usersFile)
	if err != nil {
		return err
	}
	var first crypto.Signer
	if cfg.keyFile != "" {
		var alg jose.SignatureAlgorithm
		if first, alg, err = loadKeyFile(cfg.keyFile); err != nil {
			return err
		}
		if cfg.algSet && alg != cfg.alg {
			return usageError{fmt.Errorf("-alg %s does not match the %s key in %s", cfg.alg, alg, cfg.keyFile)}
		}
		cfg.alg = alg
	} else if first, err = generateKey(cfg.alg); err != nil {
		return err
	}
	keys, err := newKeyring(first, cfg.alg, cfg.ttl, cfg.publishDelay, time.Now)
	if err != nil {
		return err
	}
	var encrypter jose.Encrypter
	encAlg := ""
	if cfg.encryptFile != "" {
		if encrypter, encAlg, err = newEncrypter(cfg.encryptFile); err != nil {
			return usageError{err}
		}
	}
	s := &issuer{
		iss:       cfg.issuer,
		audience:  cfg.audience,
		ttl:       cfg.ttl,
		users:     users,
		keys:      keys,
		userLimit: newLimiter(cfg.userLimit, time.Now),
		ipLimit:   newLimiter(cfg.ipLimit, time.Now),
		trusted:   cfg.trustedProxies,
		cookie:    cfg.cookie,
		log:       log,
		now:       time.Now,
		encrypter: encrypter,
	}

	public := http.NewServeMux()
	public.HandleFunc("/login", s.handleLogin) // checks the method itself, to answer 405 in JSON
	public.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	public.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	public.HandleFunc("GET /healthz", handleHealthz)
	public.HandleFunc("POST /logout", s.handleLogout)
	page, err := newWebPage("", cfg.cookie != "")
	if err != nil {
		return err
	}
	page.register(public)
	servers := []namedServer{{name: "public", addr: cfg.addr, handler: public}}
	if cfg.webAddr != "" {
		crossOrigin, err := newWebPage(cfg.apiOrigin, false)
		if err != nil {
			return err
		}
		web := http.NewServeMux()
		crossOrigin.register(web)
		web.HandleFunc("GET /healthz", handleHealthz)
		servers = append(servers, namedServer{name: "web", addr: cfg.webAddr, handler: web})
	}
	if cfg.adminAddr != "" {
		admin := http.NewServeMux()
		admin.HandleFunc("POST /rotate", s.handleRotate)
		admin.HandleFunc("GET /healthz", handleHealthz)
		servers = append(servers, namedServer{name: "admin", addr: cfg.adminAddr, handler: admin})
	}

	log.Info("starting", "issuer", cfg.issuer, "audience", cfg.audience, "alg", cfg.alg,
		"kid", keys.public()[0].KeyID, "ttl", cfg.ttl.String(), "users", len(users.byName),
		"rotate_every", cfg.rotateEvery.String(), "publish_delay", cfg.publishDelay.String(),
		"cookie", cfg.cookie, "api_origin", cfg.apiOrigin, "encrypt", encAlg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // the rotation loop logs; it must be done before run returns
	if cfg.rotateEvery > 0 {
		wg.Go(func() { rotateEvery(ctx, log, keys, cfg.rotateEvery) })
	}
	return serve(ctx, log, servers)
}

func rotateEvery(ctx context.Context, log *slog.Logger, keys *keyring, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rot, err := keys.rotate()
		if err != nil {
			log.Error("rotating the signing key", "trigger", "schedule", "err", err)
			continue
		}
		log.Info("key rotated", "trigger", "schedule", "kid", rot.KID, "signing_from", rot.SigningFrom,
			"previous_kid", rot.PreviousKID, "previous_withdrawn_at", rot.PreviousWithdrawnAt)
	}
}

type namedServer struct {
	name    string
	addr    string
	handler http.Handler
}

// serve listens on every address, logs {"msg":"listening","listener":name,"addr":...} for
// each (the bound address, so ":0" is useful), and serves until ctx is done or one server
// fails; then it shuts them all down gracefully.
func serve(ctx context.Context, log *slog.Logger, servers []namedServer) error {
	var lc net.ListenConfig
	listeners := make([]net.Listener, 0, len(servers))
	defer func() {
		for _, ln := range listeners {
			ln.Close() // after Shutdown these are closed already; this covers early returns
		}
	}()
	for _, ns := range servers {
		ln, err := lc.Listen(ctx, "tcp", ns.addr)
		if err != nil {
			return fmt.Errorf("%s listener: %w", ns.name, err)
		}
		listeners = append(listeners, ln)
	}

	errc := make(chan error, len(servers))
	httpServers := make([]*http.Server, len(servers))
	for i, ns := range servers {
		srv := &http.Server{
			Handler:           ns.handler,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		httpServers[i] = srv
		log.Info("listening", "listener", ns.name, "addr", listeners[i].Addr().String())
		go func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", ns.name, err)
				return
			}
			errc <- nil
		}()
	}

	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case failed = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, srv := range httpServers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Warn("shutdown", "err", err)
		}
	}
	remaining := len(servers)
	if failed != nil {
		remaining--
	}
	for range remaining {
		if err := <-errc; err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}
