package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file. Line and Column are 1-based;
// both are 0 for a problem with the whole file (an empty file, say) or for a
// Config that was built in code rather than parsed.
type Error struct {
	// File is the file name given to Parse or Load.
	File string
	// Line and Column locate the offending YAML node.
	Line, Column int
	// Path is the field path, e.g. listeners[0].virtual_hosts[1].routes[3].match.
	Path string
	// Msg says what is wrong and, where it helps, what is allowed.
	Msg string
}

// Error renders "file:line:col: path: msg", leaving out the parts that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, "%d:", e.Column)
		}
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by position. Parse, Load
// and Validate return it so that a user fixes a file in one pass rather than
// one error per run; use errors.As to get at the individual errors.
type Errors []*Error

// Error renders one error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortErrors orders errors by line and column. The sort is stable so that
// errors reported for the same node keep the order in which checks ran.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Column, b.Column)
	})
}

// position is where a YAML node starts.
type position struct{ line, col int }

// fieldPath joins a parent path and a field name.
func fieldPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// indexPath is the path of element i of the list at parent.
func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}

// mapKeyPath is the path of the entry key of the map at parent.
func mapKeyPath(parent, key string) string {
	return parent + "[" + strconv.Quote(key) + "]"
}

// parentPath strips the last ".name" or "[i]" from a path; "" has no parent.
func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}
