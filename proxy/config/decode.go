package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const (
	// maxAliasNodes bounds how many nodes may be decoded through aliases, so
	// that a "billion laughs" file cannot make the proxy allocate without end.
	// Real configurations reuse a few small anchors and stay far below it.
	maxAliasNodes = 100_000
	// maxAliasDepth bounds aliases nested inside aliases (and merge chains).
	maxAliasDepth = 64
	// maxErrors stops decoding a hopeless file; the first errors are the
	// useful ones.
	maxErrors = 200
)

// Load reads and parses the configuration file at path. See Parse. An error
// reading the file is returned wrapped (so errors.Is(err, fs.ErrNotExist)
// works); every problem with the file's contents is reported as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse decodes a YAML configuration strictly, applies the documented
// defaults and validates the result. filename is used in error messages and
// to resolve relative TLS file paths (relative to its directory; to the
// working directory when filename is empty).
//
// Decoding is strict: an unknown key, a duplicate key, a value of the wrong
// type or more than one YAML document is an error. Anchors, aliases and
// merge keys ("<<: *base") are supported, with the expansion bounded. All
// problems are collected and returned together as Errors, sorted by line.
func Parse(data []byte, filename string) (*Config, error) {
	d := &decoder{
		file:    filename,
		pos:     map[string]position{},
		failed:  map[string]bool{},
		written: map[fieldID]bool{},
		fields:  map[reflect.Type]*structFields{},
	}
	root, ok := d.document(data)
	if !ok {
		sortErrors(d.errs)
		return nil, d.errs
	}
	cfg := &Config{}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	if d.aborted {
		sortErrors(d.errs)
		return nil, d.errs
	}
	cfg.applyDefaults(d.wasWritten)

	baseDir := "."
	if filename != "" {
		baseDir = filepath.Dir(filename)
	}
	v := newValidator(filename, baseDir, d.pos, d.failed)
	v.config(cfg)
	errs := append(d.errs, v.errs...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return cfg, nil
}

// decoder walks a yaml.Node tree into Go values by reflection. It exists
// instead of yaml.Node.Decode because that stops at the first error and
// does not know field paths; here every error has both.
type decoder struct {
	file string
	// pos maps each field path present in the file to its node's position,
	// so that validation and defaults can point at (or know about) it.
	pos map[string]position
	// failed holds the paths whose value could not be decoded, so that
	// validation does not pile confusing follow-up errors on top.
	failed map[string]bool
	// written holds every field the file gave a value, by identity (its
	// address and type), so that defaults ask about a field, not about a
	// path typed by hand. A field written as null ("key:" or "key: ~") is
	// not in it: it counts as unset. Only fields that stay where they were
	// decoded are meaningful here: a map's values are copied into the map,
	// so fields inside them are not tracked (no default depends on one).
	written map[fieldID]bool
	errs    Errors
	fields  map[reflect.Type]*structFields

	aliasDepth int
	aliasNodes int
	aborted    bool
}

// fieldID identifies a field of the decoded Config: its address, and its
// type, because a struct and its first field share an address.
type fieldID struct {
	addr uintptr
	typ  reflect.Type
}

// wasWritten reports whether the file gave a value to the field field
// points to. field must be a pointer into the Config being decoded.
func (d *decoder) wasWritten(field any) bool {
	p := reflect.ValueOf(field)
	return d.written[fieldID{p.Pointer(), p.Type().Elem()}]
}

// yamlLineError matches yaml.v3's syntax errors, which carry only a line.
var yamlLineError = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data and returns the root node of its only document. It
// reports false when there is nothing sensible to decode.
func (d *decoder) document(data []byte) (root *yaml.Node, ok bool) {
	defer func() {
		// yaml.v3 has had panics on malformed input; a bad file must never
		// take the proxy down, so turn one into an ordinary error.
		if r := recover(); r != nil {
			d.add(0, 0, "", fmt.Sprintf("YAML parser failed: %v", r))
			root, ok = nil, false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.add(0, 0, "", "the file is empty; a configuration needs at least one listener")
			return nil, false
		}
		d.syntaxError(err)
		return nil, false
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(err)
		return nil, false
	case !isEmptyDocument(&next):
		d.add(next.Line, next.Column, "", "the file holds more than one YAML document; put the whole configuration in one")
		return nil, false
	}
	if isEmptyDocument(&doc) {
		d.add(0, 0, "", "the file is empty; a configuration needs at least one listener")
		return nil, false
	}
	return doc.Content[0], true
}

// isEmptyDocument reports whether a document node holds nothing but null
// (a file of comments, or a lone "---").
func isEmptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	return isNull(doc.Content[0])
}

func (d *decoder) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLineError.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.add(line, 0, "", "invalid YAML: "+m[2])
		return
	}
	d.add(0, 0, "", "invalid YAML: "+strings.TrimPrefix(msg, "yaml: "))
}

// add records an error; past maxErrors it gives up on the file.
func (d *decoder) add(line, col int, path, msg string) {
	if d.aborted {
		return
	}
	if len(d.errs) >= maxErrors {
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Msg: fmt.Sprintf("too many errors (more than %d); stopping", maxErrors)})
		d.aborted = true
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Path: path, Msg: msg})
}

// fail records that the value at path is unusable.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.add(n.Line, n.Column, path, fmt.Sprintf(format, args...))
}

// abort stops decoding for good: the file is hostile or hopeless.
func (d *decoder) abort(n *yaml.Node, path, msg string) {
	d.add(n.Line, n.Column, path, msg)
	d.aborted = true
}

// enterAlias follows an alias, counting the expansion against the budget.
func (d *decoder) enterAlias(n *yaml.Node, path string) (*yaml.Node, bool) {
	if n.Alias == nil {
		d.fail(n, path, "alias *%s refers to no anchor", n.Value)
		return nil, false
	}
	d.aliasDepth++
	if d.aliasDepth > maxAliasDepth {
		d.abort(n, path, fmt.Sprintf("aliases nested more than %d deep", maxAliasDepth))
		return nil, false
	}
	return n.Alias, true
}

// countNode charges one decoded node to the alias budget when it was
// reached through an alias.
func (d *decoder) countNode(n *yaml.Node, path string) bool {
	if d.aliasDepth == 0 {
		return true
	}
	d.aliasNodes++
	if d.aliasNodes > maxAliasNodes {
		d.abort(n, path, fmt.Sprintf("aliases expand to more than %d nodes; refusing to decode (an alias bomb?)", maxAliasNodes))
		return false
	}
	return true
}

var durationType = reflect.TypeFor[Duration]()

// decode stores node n into v, which describes the field at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.aborted {
		return
	}
	if _, seen := d.pos[path]; !seen {
		d.pos[path] = position{n.Line, n.Column}
	}
	if n.Kind == yaml.AliasNode {
		target, ok := d.enterAlias(n, path)
		if !ok {
			return
		}
		defer func() { d.aliasDepth-- }()
		d.decode(target, v, path)
		return
	}
	if !d.countNode(n, path) {
		return
	}
	if n.Kind == yaml.DocumentNode {
		d.fail(n, path, "unexpected YAML document")
		return
	}
	if isNull(n) {
		// An explicit null ("key:" or "key: ~") leaves the field unset, so
		// its default applies: the same as leaving the key out.
		return
	}
	if v.CanAddr() {
		d.written[fieldID{v.Addr().Pointer(), v.Type()}] = true
	}
	if v.Kind() == reflect.Pointer {
		p := reflect.New(v.Type().Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
		return
	}
	d.value(n, v, path)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node for "got ..." in messages, quoting scalars.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	return strconv.Quote(n.Value)
}

// value decodes a non-null, non-alias node into a non-pointer v.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if v.Type() == durationType {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		d.mapping(n, v, path, map[string]int{}, false)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), indexPath(path, i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			d.fail(n, path, "internal error: cannot decode into %s (map keys must be strings)", v.Type())
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		d.mapEntries(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if n.Kind != yaml.ScalarNode || (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil ||
			math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, "expected a finite number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		// Only reachable if types.go gains a field of a kind not handled
		// above; say so rather than silently ignoring the value.
		d.fail(n, path, "internal error: cannot decode into %s", v.Type())
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, `expected a duration such as "250ms" or "1.5s", got %s`, describe(n))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		hint := ""
		if _, nerr := strconv.ParseFloat(n.Value, 64); nerr == nil {
			hint = fmt.Sprintf(" (add a unit, e.g. %q)", n.Value+"s")
		}
		d.fail(n, path, `expected a duration such as "250ms" or "1.5s", got %q%s`, n.Value, hint)
		return
	}
	v.SetInt(int64(dur))
}

// mapEntries decodes a YAML mapping into the string-keyed map v. Keys are
// free-form (resource attribute names such as "deployment.environment"), so
// an entry's path quotes its key: tracing.resource_attributes["team"]. A
// repeated key is an error, as in structs; merge keys are not supported in
// maps, since nothing needs them there.
func (d *decoder) mapEntries(n *yaml.Node, v reflect.Value, path string) {
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content) && !d.aborted; i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.fail(k, path, "a key here must be a plain string, got %s", describe(k))
			continue
		}
		kp := mapKeyPath(path, k.Value)
		if line, dup := seen[k.Value]; dup {
			d.add(k.Line, k.Column, kp, fmt.Sprintf("duplicate key %q (first defined at line %d)", k.Value, line))
			continue
		}
		seen[k.Value] = k.Line
		ev := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, ev, kp)
		if d.failed[kp] {
			continue
		}
		key := reflect.New(v.Type().Key()).Elem()
		key.SetString(k.Value)
		m.SetMapIndex(key, ev)
	}
	v.Set(m)
}

// mapping decodes a YAML mapping into struct v. seen maps each key decoded
// so far to its line: keys repeated within one mapping are errors, while keys
// brought in by a merge ("<<") yield to the ones written out (merged is true
// while decoding a merged mapping).
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, seen map[string]int, merged bool) {
	sf := d.structFields(v.Type())
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content) && !d.aborted; i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode && k.Alias != nil {
			k = k.Alias
		}
		if k.Kind != yaml.ScalarNode {
			d.add(k.Line, k.Column, path, fmt.Sprintf("a mapping key must be a plain string, got %s", describe(k)))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		name := k.Value
		if line, dup := seen[name]; dup {
			if !merged {
				d.add(k.Line, k.Column, fieldPath(path, name), fmt.Sprintf("duplicate key %q (first defined at line %d)", name, line))
			}
			continue
		}
		seen[name] = k.Line
		f, ok := sf.byName[name]
		if !ok {
			d.add(k.Line, k.Column, path, unknownField(name, sf.names))
			continue
		}
		d.decode(val, v.FieldByIndex(f), fieldPath(path, name))
	}
	for _, m := range merges {
		d.merge(m, v, path, seen)
	}
}

// merge applies one "<<" value: an alias to a mapping or a list of them,
// earlier ones taking precedence, as in YAML 1.1's merge key type.
func (d *decoder) merge(m *yaml.Node, v reflect.Value, path string, seen map[string]int) {
	if d.aborted {
		return
	}
	depth := 0
	for m.Kind == yaml.AliasNode {
		target, ok := d.enterAlias(m, path)
		if !ok {
			return
		}
		depth++
		m = target
	}
	defer func() { d.aliasDepth -= depth }()
	if !d.countNode(m, path) {
		return
	}
	switch m.Kind {
	case yaml.MappingNode:
		d.mapping(m, v, path, seen, true)
	case yaml.SequenceNode:
		for _, item := range m.Content {
			if item.Kind == yaml.SequenceNode {
				d.add(item.Line, item.Column, path, "a merge key (<<) takes a mapping or a list of mappings, got a nested list")
				continue
			}
			d.merge(item, v, path, seen)
		}
	default:
		d.add(m.Line, m.Column, path, fmt.Sprintf("a merge key (<<) takes a mapping or a list of mappings, got %s", describe(m)))
	}
}

// unknownField says that a key is not allowed, lists the keys that are, and
// suggests the closest one when the key looks like a typo.
func unknownField(name string, allowed []string) string {
	best, bestDist := "", 3
	for _, a := range allowed {
		if dist := editDistance(name, a); dist < bestDist {
			best, bestDist = a, dist
		}
	}
	msg := fmt.Sprintf("unknown field %q", name)
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg + "; allowed: " + strings.Join(allowed, ", ")
}

// editDistance is the Levenshtein distance, for typo suggestions on short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// structFields is the YAML view of a struct type: key → field index, with
// ",inline" structs flattened into their parent.
type structFields struct {
	byName map[string][]int
	names  []string // sorted, for error messages
}

func (d *decoder) structFields(t reflect.Type) *structFields {
	if sf, ok := d.fields[t]; ok {
		return sf
	}
	sf := &structFields{byName: map[string][]int{}}
	var collect func(t reflect.Type, index []int)
	collect = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(index), i)
			if opts == "inline" && f.Type.Kind() == reflect.Struct {
				collect(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			sf.byName[name] = idx
			sf.names = append(sf.names, name)
		}
	}
	collect(t, nil)
	slices.Sort(sf.names)
	d.fields[t] = sf
	return sf
}
