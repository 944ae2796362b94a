// Command scannercases prints, as JSON lines, the table-driven cases of trivy's secret scanner tests
// (pkg/fanal/secret/scanner_test.go): each case's fields (name, configPath, inputFilePath or input, and
// the expected findings with their rule id, lines, masked match, code lines and offset) as JSON values.
//
// It evaluates, without running anything, the constant expressions the tests are written in: string and
// integer literals, +, filepath.Join, strings.Repeat, composite literals, the test function's local
// `x := ...` variables and calls of its local function literals. What it cannot evaluate is null (the
// Python side drops a case whose fields it needs are null). Each case also lists the builtin allow rules
// (builtin-allow-rules.go) whose path pattern matches the path the test scans: those skip the whole file.
//
// Usage: go run . DIR  (DIR is the module's pkg/fanal/secret)
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var testFuncs = []string{"TestSecretScanner", "TestSecretScannerWithStreaming"}

type scope struct {
	vars   map[string]any
	parent *scope
}

func (s *scope) lookup(name string) (any, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

type closure struct {
	lit *ast.FuncLit
	env *scope
}

// run executes a function body's `x := ...` statements in order and returns the value of its first return.
func run(body *ast.BlockStmt, env *scope) any {
	for _, stmt := range body.List {
		switch s := stmt.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE && len(s.Lhs) == len(s.Rhs) {
				for i, l := range s.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						env.vars[id.Name] = eval(s.Rhs[i], env)
					}
				}
			}
		case *ast.ReturnStmt:
			if len(s.Results) == 1 {
				return eval(s.Results[0], env)
			}
			return nil
		}
	}
	return nil
}

func eval(e ast.Expr, env *scope) any {
	switch x := e.(type) {
	case *ast.BasicLit:
		switch x.Kind {
		case token.STRING:
			if s, err := strconv.Unquote(x.Value); err == nil {
				return s
			}
		case token.INT:
			if n, err := strconv.ParseInt(x.Value, 0, 64); err == nil {
				return n
			}
		}
	case *ast.ParenExpr:
		return eval(x.X, env)
	case *ast.UnaryExpr:
		if x.Op == token.AND {
			return eval(x.X, env)
		}
	case *ast.Ident:
		switch x.Name {
		case "true":
			return true
		case "false":
			return false
		case "nil":
			return nil
		}
		if v, ok := env.lookup(x.Name); ok {
			return v
		}
	case *ast.BinaryExpr:
		a, b := eval(x.X, env), eval(x.Y, env)
		if sa, ok := a.(string); ok && x.Op == token.ADD {
			if sb, ok := b.(string); ok {
				return sa + sb
			}
		}
		na, okA := a.(int64)
		nb, okB := b.(int64)
		if okA && okB {
			switch x.Op {
			case token.ADD:
				return na + nb
			case token.SUB:
				return na - nb
			case token.MUL:
				return na * nb
			}
		}
	case *ast.FuncLit:
		return closure{x, env}
	case *ast.CompositeLit:
		return composite(x, env)
	case *ast.CallExpr:
		return call(x, env)
	}
	return nil
}

func composite(lit *ast.CompositeLit, env *scope) any {
	if len(lit.Elts) > 0 {
		if _, keyed := lit.Elts[0].(*ast.KeyValueExpr); keyed {
			out := map[string]any{}
			for _, elt := range lit.Elts {
				if kv, ok := elt.(*ast.KeyValueExpr); ok {
					if key, ok := kv.Key.(*ast.Ident); ok {
						out[key.Name] = eval(kv.Value, env)
					}
				}
			}
			return out
		}
	}
	if _, isArray := lit.Type.(*ast.ArrayType); !isArray && lit.Type != nil {
		return map[string]any{} // an empty struct literal
	}
	out := []any{}
	for _, elt := range lit.Elts {
		out = append(out, eval(elt, env))
	}
	return out
}

func call(c *ast.CallExpr, env *scope) any {
	args := make([]any, len(c.Args))
	for i, a := range c.Args {
		args[i] = eval(a, env)
	}
	switch fun := c.Fun.(type) {
	case *ast.SelectorExpr:
		pkg, _ := fun.X.(*ast.Ident)
		if pkg == nil {
			return nil
		}
		switch pkg.Name + "." + fun.Sel.Name {
		case "filepath.Join":
			parts := []string{}
			for _, a := range args {
				s, ok := a.(string)
				if !ok {
					return nil
				}
				parts = append(parts, s)
			}
			return path.Join(parts...) // the paths the tests scan, with forward slashes
		case "strings.Repeat":
			if len(args) == 2 {
				s, ok1 := args[0].(string)
				n, ok2 := args[1].(int64)
				if ok1 && ok2 && n >= 0 {
					return strings.Repeat(s, int(n))
				}
			}
		case "regexp.MustCompile":
			return args[0]
		}
	case *ast.Ident:
		if fun.Name == "MustCompile" && len(args) == 1 { // the secret package's own regexp wrapper
			return args[0]
		}
		v, _ := env.lookup(fun.Name)
		if f, ok := v.(closure); ok {
			inner := &scope{map[string]any{}, f.env}
			i := 0
			for _, field := range f.lit.Type.Params.List {
				for _, name := range field.Names {
					if i < len(args) {
						inner.vars[name.Name] = args[i]
					}
					i++
				}
			}
			return run(f.lit.Body, inner)
		}
	}
	return nil
}

type allowRule struct {
	id   string
	path *regexp.Regexp
}

// builtinPathRules reads builtinAllowRules' ids and path patterns.
func builtinPathRules(dir string) ([]allowRule, error) {
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "builtin-allow-rules.go"), nil, 0)
	if err != nil {
		return nil, err
	}
	var out []allowRule
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gen.Specs {
			vs, ok := spec.(*ast.ValueSpec)
			if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "builtinAllowRules" || len(vs.Values) != 1 {
				continue
			}
			rules, _ := eval(vs.Values[0], &scope{map[string]any{}, nil}).([]any)
			for _, r := range rules {
				m, _ := r.(map[string]any)
				id, _ := m["ID"].(string)
				pattern, ok := m["Path"].(string)
				if !ok {
					continue
				}
				re, err := regexp.Compile(pattern)
				if err != nil {
					return nil, fmt.Errorf("allow rule %s: %w", id, err)
				}
				out = append(out, allowRule{id, re})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no builtin allow rules with a path in %s", dir)
	}
	return out, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: scannercases DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	pathRules, err := builtinPathRules(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "scanner_test.go"), nil, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	count := 0
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		known := false
		for _, name := range testFuncs {
			known = known || fn.Name.Name == name
		}
		if !known {
			continue
		}
		env := &scope{map[string]any{}, nil}
		run(fn.Body, env)
		tests, _ := env.vars["tests"].([]any)
		for _, t := range tests {
			tc, ok := t.(map[string]any)
			if !ok {
				continue
			}
			scanned, _ := tc["inputFilePath"].(string)
			if _, inline := tc["input"]; inline {
				scanned = "test.txt" // the path the streaming test passes to Scan
			}
			allowed := []string{}
			for _, r := range pathRules {
				if r.path.MatchString(scanned) {
					allowed = append(allowed, r.id)
				}
			}
			tc["func"] = fn.Name.Name
			tc["scannedPath"] = scanned
			tc["pathAllowedBy"] = allowed
			if err := out.Encode(tc); err != nil {
				panic(err)
			}
			count++
		}
	}
	fmt.Fprintf(os.Stderr, "%d cases\n", count)
}
