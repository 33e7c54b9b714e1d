// Package condition compiles and evaluates the CEL expressions of rules (match.cel on the
// request alone, require.cel on the verified claims and the request). Expressions are parsed
// and type-checked once, when a config loads; evaluation is bounded by a cost limit and an
// error never reads as true.
package condition

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// DefaultCostLimit bounds one evaluation when the config sets no cel.cost_limit. It is the
// per-expression limit Kubernetes uses for CEL in admission and CRD validation: far above
// any comparison of claims with headers (tens of units), far below a runaway loop over a
// large header map.
const DefaultCostLimit = 1_000_000

// maxExpressionBytes bounds the source of one expression: a policy, not a program.
const maxExpressionBytes = 4096

// ErrNotBool: the expression does not produce a bool.
var ErrNotBool = errors.New("condition: the expression must produce a bool")

// The variables an expression may read, with their declared types. Dotted names are
// declared whole, so "request.paht" is a compile error rather than a run-time one.
var variables = []cel.EnvOption{
	cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
	cel.Variable("request.method", cel.StringType),
	cel.Variable("request.path", cel.StringType),
	cel.Variable("request.host", cel.StringType),
	cel.Variable("request.headers", cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable("request.query", cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable("source.principal", cel.StringType),
	cel.Variable("destination.principal", cel.StringType),
	cel.Variable("context_extensions", cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable("now", cel.TimestampType),
}

// Variables names what an expression may read, for error messages and docs.
const Variables = "claims, request.method, request.path, request.host, request.headers, " +
	"request.query, source.principal, destination.principal, context_extensions, now"

var (
	envOnce sync.Once
	env     *cel.Env
	envErr  error
)

func celEnv() (*cel.Env, error) {
	envOnce.Do(func() {
		opts := append([]cel.EnvOption{
			ext.Strings(),
			cel.ParserExpressionSizeLimit(maxExpressionBytes),
		}, variables...)
		env, envErr = cel.NewEnv(opts...)
	})
	return env, envErr
}

// Program is one compiled expression. It is immutable and safe for concurrent use.
type Program struct {
	source string
	prg    cel.Program
}

// Compile parses and type-checks expr and prepares it for evaluation with the given cost
// limit (0 means DefaultCostLimit). An error carries the line and column of each problem.
func Compile(expr string, costLimit uint64) (*Program, error) {
	e, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("condition: the expression is empty")
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, compileError(iss)
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return nil, fmt.Errorf("%w, not %s", ErrNotBool, ast.OutputType())
	}
	if costLimit == 0 {
		costLimit = DefaultCostLimit
	}
	prg, err := e.Program(ast, cel.CostLimit(costLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	return &Program{source: expr, prg: prg}, nil
}

// compileError reports each issue as "line:column: message", one per line.
func compileError(iss *cel.Issues) error {
	var b strings.Builder
	for i, e := range iss.Errors() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message)
	}
	return errors.New(b.String())
}

// Source is the expression as written.
func (p *Program) Source() string { return p.source }

// Request is what an expression sees of the request. extauthz's request view implements it;
// maps are built only when an expression reads them.
type Request interface {
	Method() string
	Path() string // normalised as rules match it
	Host() string
	// Header is one header by lower-case name; Headers is all of them. Both leave out
	// pseudo-headers and join repeated headers with ",".
	Header(name string) (string, bool)
	Headers() map[string]string
	Query() map[string]string
	SourcePrincipal() string
	DestinationPrincipal() string
	ContextExtensions() map[string]string
}

// Input is one evaluation's variables. Claims is nil in match.cel, where no token has been
// verified yet; an expression that reads claims there sees an empty map.
type Input struct {
	Request Request
	Claims  *Claims
	Now     time.Time
}

// Claims is a verified payload prepared for expressions. It is built once per token (and
// kept with a cached token), not on every check.
type Claims struct{ v ref.Val }

// emptyClaims is claims where no token was verified.
var emptyClaims = types.DefaultTypeAdapter.NativeToValue(map[string]any{})

// ResolveName makes an Input the activation of an evaluation: variables are resolved
// lazily, so a request's headers become a map only for an expression that needs all of them.
func (in *Input) ResolveName(name string) (any, bool) {
	r := in.Request
	switch name {
	case "claims":
		if in.Claims == nil {
			return emptyClaims, true
		}
		return in.Claims.v, true
	case "request.method":
		return r.Method(), true
	case "request.path":
		return r.Path(), true
	case "request.host":
		return r.Host(), true
	case "request.headers":
		return &lazyMap{r: r}, true
	case "request.query":
		return r.Query(), true
	case "source.principal":
		return r.SourcePrincipal(), true
	case "destination.principal":
		return r.DestinationPrincipal(), true
	case "context_extensions":
		return r.ContextExtensions(), true
	case "now":
		return in.Now, true
	}
	return nil, false
}

// Parent is part of interpreter.Activation: an Input has none.
func (*Input) Parent() interpreter.Activation { return nil }

// Eval runs the program. A true result is the only allow; anything else is false or an
// error, and callers deny on both.
func (p *Program) Eval(in *Input) (bool, error) {
	out, _, err := p.prg.Eval(in)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok { // type-checked to bool, but a dyn value can still surprise
		return false, ErrNotBool
	}
	return b, nil
}

// NewClaims prepares a decoded JWT payload for expressions: JSON numbers (json.Number, kept
// exact elsewhere) become int when they are integers and double otherwise, so
// claims.exp > 0 and claims.level >= 2 compare as numbers. It shares no mutable state with
// payload.
func NewClaims(payload map[string]any) *Claims {
	return &Claims{v: types.DefaultTypeAdapter.NativeToValue(jsonObject(payload))}
}

func jsonObject(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, e := range v {
		out[k] = jsonValue(e)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		return jsonObject(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonValue(e)
		}
		return out
	}
	return v
}
