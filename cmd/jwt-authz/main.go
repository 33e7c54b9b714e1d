// Command jwt-authz is the JWT-verifying ext_authz server for Envoy: it reads one YAML config
// file, loads the providers' keys, and answers envoy.service.auth.v3.Authorization/Check over
// gRPC, with health, reflection, metrics, hot reload and graceful shutdown.
//
//	jwt-authz -config FILE           run the server
//	jwt-authz -config FILE -check    validate the config and exit 0 (valid) or 1
//	jwt-authz -version               print version, commit and Go version
//	jwt-authz -healthcheck URL       GET URL, exit 0 on 200 (container health checks)
//	jwt-authz -test FILE...          run policy test files (docs/policy-tests.md)
//	jwt-authz -config FILE -explain -path /x [-method M] [-host H] [-header "N: v"]...
//	          [-token FILE|-] [-fetch-keys] [-now RFC3339]
//	                                 print how the policy decides that request, step by step
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	// CEL conditions read time zones (now.getHours("Europe/Berlin")); distroless images have
	// no zoneinfo, so the binary carries its own.
	_ "time/tzdata"

	"github.com/jwt-authz/jwt-authz/config"
	"github.com/jwt-authz/jwt-authz/internal/probe"
)

// Set at build time: -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errQuietExit) {
			fmt.Fprintln(os.Stderr, "jwt-authz:", err)
		}
		os.Exit(1)
	}
}

// errQuietExit: the failure was already reported.
var errQuietExit = errors.New("exit 1")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

// runIO is run with its standard input: -explain -token - reads the token there.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jwt-authz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path to the YAML config file")
	check := fs.Bool("check", false, "validate the config file and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	healthURL := fs.String("healthcheck", "", "GET this URL and exit 0 on 200 (for container health checks)")
	policyTests := fs.Bool("test", false, "run the policy test files named as arguments and exit (docs/policy-tests.md)")
	doExplain := fs.Bool("explain", false, "print how the config decides the request given by -method, -host, -path, -header and -token, and exit")
	var er explainRequest
	fs.StringVar(&er.method, "method", "GET", "with -explain: the request method")
	fs.StringVar(&er.host, "host", "api.example.com", "with -explain: the request host")
	fs.StringVar(&er.path, "path", "/", "with -explain: the request path, with its query")
	fs.Var(&er.headers, "header", `with -explain: a request header "Name: value" (repeatable)`)
	fs.StringVar(&er.tokenFile, "token", "", "with -explain: a file holding the bearer token, or - for stdin")
	fs.BoolVar(&er.fetchKeys, "fetch-keys", false, "with -explain: fetch remote keys (jwks_uri, discovery) and call introspection endpoints; by default only key files are read")
	fs.StringVar(&er.now, "now", "", "with -explain: the time of the check (RFC 3339; default now)")
	if err := fs.Parse(args); err != nil {
		return errQuietExit
	}
	switch {
	case *policyTests:
		return runPolicyTests(ctx, fs.Args(), stdout, stderr)
	case *showVersion:
		fmt.Fprintf(stdout, "jwt-authz %s (commit %s, %s)\n", version, commit, runtime.Version())
		return nil
	case *healthURL != "":
		return probe.Get(*healthURL)
	case *configPath == "":
		fmt.Fprintln(stderr, "jwt-authz: -config is required")
		fs.Usage()
		return errQuietExit
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		if *check {
			fmt.Fprintln(stderr, err)
			return errQuietExit
		}
		return err
	}
	if *doExplain {
		return explain(ctx, cfg, er, stdin, stdout)
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (%s, %s)\n", *configPath, plural(len(cfg.Providers), "provider"), plural(len(cfg.Rules), "rule"))
		return nil
	}
	return serve(ctx, *configPath, cfg, stderr)
}

// plural is "1 rule", "2 rules".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
