package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/extauthz"
	"github.com/jwt-authz/jwt-authz/introspect"
	"github.com/jwt-authz/jwt-authz/keys"
)

// explainRequest is what -explain decides: the flags that describe one request.
type explainRequest struct {
	method, host, path string
	headers            headerFlags
	tokenFile          string // a file holding the token, or "-" for stdin
	fetchKeys          bool
	now                string
}

// headerFlags collects repeated -header "Name: value" flags.
type headerFlags []extauthz.Header

func (h *headerFlags) String() string { return fmt.Sprint(len(*h), " headers") }

func (h *headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return errors.New(`want "Name: value"`)
	}
	*h = append(*h, extauthz.Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	return nil
}

// explain prints how the policy of cfg decides one request. File keys are read from disk;
// remote keys are fetched, and introspection endpoints called, only with -fetch-keys, so by
// default nothing leaves the machine.
func explain(ctx context.Context, cfg *config.Config, er explainRequest, stdin io.Reader, stdout io.Writer) error {
	now := time.Now()
	if er.now != "" {
		t, err := time.Parse(time.RFC3339, er.now)
		if err != nil {
			return fmt.Errorf("-now: %w", err)
		}
		now = t
	}
	req := &extauthz.Request{Method: er.method, Host: er.host, Path: er.path, Headers: er.headers}
	if er.tokenFile != "" {
		token, err := readToken(er.tokenFile, stdin)
		if err != nil {
			return err
		}
		req.Headers = append(req.Headers, extauthz.Header{Name: "authorization", Value: "Bearer " + token})
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the background refresh that Start begins
	sources := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if !er.fetchKeys {
			ks, remote, err := fileKeys(cfg, p)
			if err != nil {
				return err
			}
			if remote {
				fmt.Fprintf(stdout, "note: provider %q has remote keys, not fetched (use -fetch-keys)\n", p.Name)
			}
			sources[p.Name] = ks
			continue
		}
		set, err := keys.NewSet(p.Issuer, p.Keys, cfg.Path, keys.Options{})
		if err != nil {
			return fmt.Errorf("providers %q: %w", p.Name, err)
		}
		sources[p.Name] = set
		if err := set.Start(ctx); err != nil {
			return fmt.Errorf("providers %q: %w", p.Name, err)
		}
	}
	decryption, err := decryptionKeys(cfg)
	if err != nil {
		return err
	}
	introspectors := map[string]extauthz.Introspector{}
	if er.fetchKeys {
		clients, err := introspect.Clients(cfg)
		if err != nil {
			return err
		}
		for name, c := range clients {
			introspectors[name] = c
		}
	} else {
		introspectors = offlineIntrospectors(cfg)
		for _, p := range cfg.Providers {
			if p.Introspection != nil {
				fmt.Fprintf(stdout, "note: provider %q introspects opaque tokens; its endpoint is not called (use -fetch-keys)\n", p.Name)
			}
		}
	}
	policy, err := extauthz.NewPolicy(cfg, sources, extauthz.WithDecryptionKeys(decryption), extauthz.WithIntrospectors(introspectors))
	if err != nil {
		return err
	}
	_, lines := policy.Explain(ctx, req, now)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	return nil
}

// fileKeys is the provider's key files alone, loaded now; remote reports that it also has
// remote sources, which are left out: a Set refetches on an unknown kid, so offline means
// leaving them out rather than merely not starting them.
func fileKeys(cfg *config.Config, p config.Provider) (ks extauthz.KeySource, remote bool, err error) {
	specs := slices.DeleteFunc(slices.Clone(p.Keys), func(k config.Key) bool { return k.JWKSURI != "" || k.Discovery })
	remote = len(specs) < len(p.Keys)
	if len(specs) == 0 {
		return offlineKeys{}, remote, nil
	}
	set, err := keys.NewSet(p.Issuer, specs, cfg.Path, keys.Options{})
	if err != nil {
		return nil, remote, fmt.Errorf("providers %q: %w", p.Name, err)
	}
	return set, remote, nil
}

// offlineKeys stands for a provider whose keys are all remote when -explain may not fetch.
type offlineKeys struct{}

var _ extauthz.KeySource = offlineKeys{}

func (offlineKeys) Lookup(context.Context, string) (*jose.JSONWebKey, bool, error) {
	return nil, false, errors.New("remote keys not fetched (use -fetch-keys)")
}

func (offlineKeys) Ready() bool { return false }

// offlineIntrospector stands for a provider's introspection endpoint where it may not be
// called: an opaque token is then introspection_unavailable, as with the endpoint down,
// rather than a malformed token as for a config without introspection.
type offlineIntrospector struct{}

func (offlineIntrospector) Introspect(context.Context, string) (bool, []byte, error) {
	return false, nil, errors.New("the introspection endpoint is not called offline (-explain: use -fetch-keys)")
}

// offlineIntrospectors is an offlineIntrospector for each provider with introspection.
func offlineIntrospectors(cfg *config.Config) map[string]extauthz.Introspector {
	m := map[string]extauthz.Introspector{}
	for _, p := range cfg.Providers {
		if p.Introspection != nil {
			m[p.Name] = offlineIntrospector{}
		}
	}
	return m
}

// readToken reads a compact JWS from a file or, for "-", from stdin (so it stays out of
// the shell history and the process list), with an optional "Bearer " in front.
func readToken(name string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("-token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		return "", errors.New("-token: empty")
	}
	return token, nil
}

// decryptionKeys loads the JWE decryption keys of the providers that configure encryption.
// They are files only, so -explain and -test read nested tokens offline, as the server does.
func decryptionKeys(cfg *config.Config) (map[string]extauthz.KeySource, error) {
	out := map[string]extauthz.KeySource{}
	for _, p := range cfg.Providers {
		if p.Encryption == nil {
			continue
		}
		set, err := keys.NewDecryptionSet(p.Name, p.Encryption.Keys, cfg.Path, keys.Options{})
		if err != nil {
			return nil, fmt.Errorf("providers %q: encryption: %w", p.Name, err)
		}
		out[p.Name] = set
	}
	return out, nil
}
