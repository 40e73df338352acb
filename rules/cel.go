package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// celCostLimit bounds the work one `when:` evaluation may do, so that a
// policy author's expression over agent-controlled lists cannot stall the gate.
const celCostLimit = 1_000_000

// maxCELSource bounds the length of one `when:` expression.
const maxCELSource = 4096

// celRoots are the variables a `when:` expression may read.
var celRoots = []string{"action", "context", "signals", "identity"}

var (
	celEnvOnce sync.Once
	celEnv     *cel.Env
	celEnvErr  error
)

// policyCELEnv is the CEL environment of `when:` expressions: action,
// context, signals and identity as dynamic maps, and now as a timestamp.
func policyCELEnv() (*cel.Env, error) {
	celEnvOnce.Do(func() {
		dyn := cel.MapType(cel.StringType, cel.DynType)
		celEnv, celEnvErr = cel.NewEnv(
			cel.Variable("action", dyn),
			cel.Variable("context", dyn),
			cel.Variable("signals", dyn),
			cel.Variable("identity", dyn),
			cel.Variable("now", cel.TimestampType),
		)
	})
	return celEnv, celEnvErr
}

// errCELCompile wraps CEL compile and type-check failures.
var errCELCompile = errors.New("when: CEL expression")

// compileCEL parses, type-checks and plans a `when:` expression. It returns
// the program and the static context./signals. paths it reads, which
// Evaluate uses to tell "context not yet populated" from other failures.
func compileCEL(env *cel.Env, src string) (cel.Program, []string, error) {
	if len(src) > maxCELSource {
		return nil, nil, fmt.Errorf("%w is %d bytes, more than the limit of %d", errCELCompile, len(src), maxCELSource)
	}
	checked, iss := env.Compile(src)
	if iss != nil && iss.Err() != nil {
		return nil, nil, fmt.Errorf("%w does not compile: %s", errCELCompile, strings.TrimSpace(iss.Err().Error()))
	}
	if t := checked.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
		return nil, nil, fmt.Errorf("%w must be a bool, it is %s", errCELCompile, t)
	}
	prg, err := env.Program(checked, cel.CostLimit(celCostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errCELCompile, err)
	}
	return prg, celPaths(checked), nil
}

// celPaths lists the dotted field paths rooted at one of celRoots that the
// expression selects (e.g. "context.facts.ticket"), sorted and de-duplicated.
func celPaths(a *cel.Ast) []string {
	seen := map[string]bool{}
	visitor := ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.SelectKind {
			return
		}
		if p, ok := celSelectPath(e); ok {
			seen[p] = true
		}
	})
	ast.PostOrderVisit(a.NativeRep().Expr(), visitor)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func celSelectPath(e ast.Expr) (string, bool) {
	var parts []string
	for e.Kind() == ast.SelectKind {
		s := e.AsSelect()
		if !s.IsTestOnly() {
			parts = append(parts, s.FieldName())
		}
		e = s.Operand()
	}
	if e.Kind() != ast.IdentKind {
		return "", false
	}
	root := e.AsIdent()
	found := false
	for _, r := range celRoots {
		if r == root {
			found = true
		}
	}
	if !found || len(parts) == 0 {
		return "", false
	}
	out := root
	for i := len(parts) - 1; i >= 0; i-- {
		out += "." + parts[i]
	}
	return out, true
}

// isCELMissingKey reports whether a CEL evaluation error means a map key was
// absent.
func isCELMissingKey(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such key") || strings.Contains(s, "no such attribute")
}
