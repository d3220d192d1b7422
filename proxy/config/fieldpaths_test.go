package config

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// yamlNames returns every YAML key of t and of the types it contains.
func yamlNames(t reflect.Type, seen map[reflect.Type]bool, names map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name != "" && name != "-" {
			names[name] = true
		}
		yamlNames(f.Type, seen, names)
	}
}

// TestFieldPathLiterals: every field path written as a string literal in
// the loader and in the policy blocks' checks (fieldPath's name, the path
// a validator method reports at, a Reporter's field) names YAML keys the
// schema has, so that a typo cannot make an error point nowhere.
func TestFieldPathLiterals(t *testing.T) {
	names := map[string]bool{}
	yamlNames(reflect.TypeFor[Config](), map[reflect.Type]bool{}, names)

	var files []string
	for _, glob := range []string{"*.go", "../lbpolicy/*.go"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			arg := -1
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				if fn.Name == "fieldPath" {
					arg = 1
				}
			case *ast.SelectorExpr:
				// validator methods (v.errorf, v.oneOf, …) and Reporter
				// methods (r.Errorf, r.OneOf) take the path first.
				if x, ok := fn.X.(*ast.Ident); ok && (x.Name == "v" || x.Name == "r") {
					arg = 0
				}
			}
			if arg < 0 || arg >= len(call.Args) {
				return true
			}
			lit, ok := call.Args[arg].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			path, err := strconv.Unquote(lit.Value)
			if err != nil || path == "" {
				return true
			}
			checked++
			for _, seg := range strings.Split(path, ".") {
				if !names[seg] {
					t.Errorf("%s: path %q: %q is not a YAML key of the schema", fset.Position(lit.Pos()), path, seg)
				}
			}
			return true
		})
	}
	if checked < 100 {
		t.Errorf("checked only %d path literals; the scan has lost track of the code", checked)
	}
	t.Logf("checked %d path literals", checked)
}
