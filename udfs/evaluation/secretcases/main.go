// Command secretcases prints, as JSON lines, the labelled examples in a secret scanner's Go tests:
// each composite literal with `input` and `want` fields whose values are string constants, string
// concatenations or fmt.Sprintf calls over them. Cases it cannot evaluate are counted, not guessed.
//
// Usage: go run . DIR  (DIR holds one folder per detector with its *_test.go files)
package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

type labelled struct {
	Detector string   `json:"detector"`
	Name     string   `json:"name"`
	Input    string   `json:"input"`
	Want     []string `json:"want"`
}

// errUnknown marks an expression that is not a string constant we can evaluate.
type errUnknown struct{ expr ast.Expr }

func (e errUnknown) Error() string { return fmt.Sprintf("%T", e.expr) }

type evaluator struct{ names map[string]ast.Expr }

func (ev evaluator) str(e ast.Expr) (string, error) {
	switch x := e.(type) {
	case *ast.BasicLit:
		if x.Kind == token.STRING {
			return strconv.Unquote(x.Value)
		}
	case *ast.ParenExpr:
		return ev.str(x.X)
	case *ast.Ident:
		if v, ok := ev.names[x.Name]; ok {
			return ev.str(v)
		}
	case *ast.BinaryExpr:
		if x.Op == token.ADD {
			a, err := ev.str(x.X)
			if err != nil {
				return "", err
			}
			b, err := ev.str(x.Y)
			return a + b, err
		}
	case *ast.CallExpr:
		if sel, ok := x.Fun.(*ast.SelectorExpr); ok && len(x.Args) > 0 {
			pkg, _ := sel.X.(*ast.Ident)
			if pkg != nil && pkg.Name == "fmt" && sel.Sel.Name == "Sprintf" {
				format, err := ev.str(x.Args[0])
				if err != nil {
					return "", err
				}
				args := make([]any, 0, len(x.Args)-1)
				for _, a := range x.Args[1:] {
					s, err := ev.str(a)
					if err != nil {
						return "", err
					}
					args = append(args, s)
				}
				return fmt.Sprintf(format, args...), nil
			}
		}
	}
	return "", errUnknown{e}
}

func (ev evaluator) strs(e ast.Expr) ([]string, error) {
	if id, ok := e.(*ast.Ident); ok && id.Name == "nil" {
		return []string{}, nil
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, errUnknown{e}
	}
	out := []string{}
	for _, elt := range lit.Elts {
		s, err := ev.str(elt)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// names maps the file's package-level constants and variables, and local `x := "..."` assignments, to
// their expressions.
func names(f *ast.File) map[string]ast.Expr {
	out := map[string]ast.Expr{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.ValueSpec:
			for i, id := range x.Names {
				if i < len(x.Values) {
					out[id.Name] = x.Values[i]
				}
			}
		case *ast.AssignStmt:
			if x.Tok == token.DEFINE && len(x.Lhs) == len(x.Rhs) {
				for i, l := range x.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						out[id.Name] = x.Rhs[i]
					}
				}
			}
		}
		return true
	})
	return out
}

func fields(lit *ast.CompositeLit) map[string]ast.Expr {
	out := map[string]ast.Expr{}
	for _, elt := range lit.Elts {
		if kv, ok := elt.(*ast.KeyValueExpr); ok {
			if key, ok := kv.Key.(*ast.Ident); ok {
				out[key.Name] = kv.Value
			}
		}
	}
	return out
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: secretcases DIR")
		os.Exit(2)
	}
	root := os.Args[1]
	files, err := filepath.Glob(filepath.Join(root, "*", "*_test.go"))
	if err != nil {
		panic(err)
	}
	more, _ := filepath.Glob(filepath.Join(root, "*", "*", "*_test.go"))
	files = append(files, more...)
	out := json.NewEncoder(os.Stdout)
	skipped := 0
	for _, path := range files {
		if strings.HasSuffix(path, "_integration_test.go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			skipped++
			continue
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		ev := evaluator{names(f)}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			fs := fields(lit)
			inputExpr, hasInput := fs["input"]
			wantExpr, hasWant := fs["want"]
			if !hasInput || !hasWant {
				return true
			}
			input, err1 := ev.str(inputExpr)
			want, err2 := ev.strs(wantExpr)
			if err1 != nil || err2 != nil {
				skipped++
				return false
			}
			name := ""
			if e, ok := fs["name"]; ok {
				name, _ = ev.str(e)
			}
			if err := out.Encode(labelled{filepath.ToSlash(rel), name, input, want}); err != nil {
				panic(err)
			}
			return false
		})
	}
	fmt.Fprintf(os.Stderr, "%d files, %d cases not evaluated\n", len(files), skipped)
}
