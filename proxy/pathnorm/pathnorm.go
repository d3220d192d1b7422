// Package pathnorm normalises request paths before routing, as Envoy's HTTP
// connection manager does with normalize_path, merge_slashes and
// path_with_escaped_slashes_action, so that route matching and the
// upstream see one path and "/x/../admin" cannot slip past a route that
// guards "/admin".
//
// Normalize follows Envoy's order of operations
// (ConnectionManagerUtility::maybeNormalizePath): refuse a fragment,
// apply the escaped-slashes action, canonicalise the path as Chromium's
// URL library does (Envoy's PathUtil::canonicalPath), then merge slashes.
// The query is never touched. Where hopwatch is stricter than Envoy, the
// difference is named at the function that makes it and in
// docs/config.md: an invalid percent escape, a raw control character and
// a ".." above the root are refused rather than passed or clamped, and
// "//" alone merges to "/".
//
// A path that needs no change, the common case, is checked in one pass
// and returned as it came, without allocating.
package pathnorm

import (
	"bytes"
	"errors"
	"strings"
)

// EscapedSlashesAction is Envoy's path_with_escaped_slashes_action: what
// to do with a path that holds %2F or %5C (escaped "/" and "\"), which
// servers disagree about: some decode them before splitting the path into
// segments, most do not.
type EscapedSlashesAction uint8

const (
	// KeepUnchanged forwards %2F and %5C as they are (Envoy's
	// KEEP_UNCHANGED, its default).
	KeepUnchanged EscapedSlashesAction = iota
	// RejectRequest answers 400.
	RejectRequest
	// UnescapeAndRedirect answers 307 with the unescaped, normalised path,
	// so that the client, the proxy and the upstream all use one path.
	UnescapeAndRedirect
	// UnescapeAndForward unescapes them and forwards the request.
	UnescapeAndForward
)

// escapedSlashesNames are the YAML values of each action, in Envoy's
// snake_case form; ParseEscapedSlashesAction also takes Envoy's enum
// spelling (KEEP_UNCHANGED).
var escapedSlashesNames = [...]string{
	KeepUnchanged:       "keep_unchanged",
	RejectRequest:       "reject_request",
	UnescapeAndRedirect: "unescape_and_redirect",
	UnescapeAndForward:  "unescape_and_forward",
}

// EscapedSlashesActionNames lists the accepted YAML values, for error
// messages and documentation.
func EscapedSlashesActionNames() []string { return escapedSlashesNames[:] }

// String returns the action's YAML value.
func (a EscapedSlashesAction) String() string {
	if int(a) < len(escapedSlashesNames) {
		return escapedSlashesNames[a]
	}
	return "unknown"
}

// ParseEscapedSlashesAction parses an action name: Envoy's snake_case
// YAML value or its enum spelling, in either case. ok is false for any
// other string. Envoy's IMPLEMENTATION_SPECIFIC_DEFAULT is not accepted:
// hopwatch's default differs from Envoy's, so a config says what it means.
func ParseEscapedSlashesAction(s string) (a EscapedSlashesAction, ok bool) {
	for i, name := range escapedSlashesNames {
		if s == name || strings.EqualFold(s, name) {
			return EscapedSlashesAction(i), true
		}
	}
	return KeepUnchanged, false
}

// Options select the normalisations, as the connection manager's fields
// of the same names do.
type Options struct {
	// NormalizePath is Envoy's normalize_path: RFC 3986 dot-segment
	// removal, "\" read as "/", percent-encoded unreserved characters
	// decoded, and characters that may not appear in a path escaped.
	NormalizePath bool
	// MergeSlashes is Envoy's merge_slashes: runs of "/" become one.
	MergeSlashes bool
	// EscapedSlashes is Envoy's path_with_escaped_slashes_action.
	EscapedSlashes EscapedSlashesAction
}

// Errors name why a path was refused. Envoy answers each with 400 and the
// details path_normalization_failed.
var (
	// ErrFragment: the target holds "#", which a client never sends and
	// servers disagree about (Envoy's http_reject_path_with_fragment).
	ErrFragment = errors.New("the path holds a fragment (#)")
	// ErrControl: a NUL or another control character, raw or as %00.
	ErrControl = errors.New("the path holds a NUL or another control character")
	// ErrInvalidEscape: a "%" not followed by two hex digits.
	ErrInvalidEscape = errors.New("the path holds an invalid percent escape")
	// ErrAboveRoot: a ".." segment would climb above "/".
	ErrAboveRoot = errors.New(`the path climbs above the root with ".."`)
	// ErrEscapedSlash: %2F or %5C under reject_request.
	ErrEscapedSlash = errors.New("the path holds an escaped slash (%2F or %5C)")
)

// Normalize returns the normalised form of target, an origin-form request
// target (path and optional query), and whether the escaped-slashes action
// asks for a redirect to it. A target that needs no change is returned as
// it is, without allocating. err, one of the Err values, means the request
// must be refused with 400.
func Normalize(target string, o Options) (out string, redirect bool, err error) {
	if strings.IndexByte(target, '#') >= 0 {
		return "", false, ErrFragment
	}
	path, query := target, ""
	if q := strings.IndexByte(target, '?'); q >= 0 {
		path, query = target[:q], target[q:]
	}
	if isNormal(path, o) {
		return target, false, nil
	}
	p, redirect, err := normalizePath(path, o)
	if err != nil {
		return "", false, err
	}
	return p + query, redirect, nil
}

// normalizePath runs every step on a path without its query. It is the
// reference that isNormal must agree with: the fuzz target checks that
// isNormal never skips a path this would change.
func normalizePath(path string, o Options) (p string, redirect bool, err error) {
	p = path
	if o.EscapedSlashes != KeepUnchanged {
		var found bool
		if p, found = unescapeSlashes(p); found {
			switch o.EscapedSlashes {
			case RejectRequest:
				return "", false, ErrEscapedSlash
			case UnescapeAndRedirect:
				redirect = true
			}
		}
	}
	if o.NormalizePath {
		if p, err = canonicalize(p); err != nil {
			return "", false, err
		}
	}
	if o.MergeSlashes {
		p = mergeSlashes(p)
	}
	return p, redirect, nil
}

// isNormal reports whether normalizePath would return path unchanged and
// without error, in one pass that allocates nothing.
//
//nolint:gocognit // a one-pass, allocation-free mirror of normalizePath's steps on the hot path; split, it would need the shared cursor threaded through each
func isNormal(path string, o Options) bool {
	if o.NormalizePath && (path == "" || path[0] != '/') {
		return false
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if pathCharClass[c] == pass {
			continue // letters, digits, "." and most punctuation
		}
		switch {
		case c == '%':
			if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
				if o.NormalizePath {
					return false // canonicalize refuses it
				}
				continue
			}
			v := unhex(path[i+1])<<4 | unhex(path[i+2])
			if o.EscapedSlashes != KeepUnchanged && (v == '/' || v == '\\') {
				return false
			}
			if o.NormalizePath && (v == 0 || isUnreserved(v)) {
				return false // refused, or decoded
			}
			i += 2
		case c == '/':
			if o.MergeSlashes && i+1 < len(path) && path[i+1] == '/' {
				return false
			}
			if o.NormalizePath && i+1 < len(path) && path[i+1] == '.' {
				end := strings.IndexByte(path[i+1:], '/')
				if end < 0 {
					end = len(path) - i - 1
				}
				if dotSegment(path[i+1:i+1+end]) != 0 {
					return false
				}
			}
		case o.NormalizePath:
			return false // "\\", or escaped or refused
		}
	}
	return true
}

// unescapeSlashes replaces %2F and %5C (any case) with "/" and "\", as
// Envoy's PathUtil::unescapeSlashes: left to right, so "%%2f" becomes "%/".
func unescapeSlashes(p string) (string, bool) {
	i := indexEscapedSlash(p)
	if i < 0 {
		return p, false
	}
	var b strings.Builder
	b.Grow(len(p))
	for i >= 0 {
		b.WriteString(p[:i])
		if p[i+1] == '2' {
			b.WriteByte('/')
		} else {
			b.WriteByte('\\')
		}
		p = p[i+3:]
		i = indexEscapedSlash(p)
	}
	b.WriteString(p)
	return b.String(), true
}

// indexEscapedSlash returns the index of the first %2F or %5C in p, or -1.
func indexEscapedSlash(p string) int {
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		switch a, b := p[i+1], p[i+2]|0x20; {
		case a == '2' && b == 'f', a == '5' && b == 'c':
			return i
		}
	}
	return -1
}

// canonicalize is Chromium's path canonicalisation as Envoy uses it
// (url::CanonicalizePath), segment by segment:
//
//   - the path starts with "/" (one is added if missing); "\" is a "/";
//   - %XX of an unreserved character (ALPHA, DIGIT, "-", ".", "_", "~") is
//     decoded; every other escape is kept with the case of its hex digits;
//   - a character that may not appear in a path (space, `"`, "<", ">",
//     "^", "`", "{", "|", "}", DEL is refused below, bytes ≥ 0x80) is
//     escaped with upper-case hex;
//   - "." and ".." segments, literal or escaped, are removed as RFC 3986's
//     remove_dot_segments does, and so are ".;params" and "..;params"
//     (Envoy's strip_dotdot_segments_with_parameters, which servers such
//     as Tomcat read as "." and "..").
//
// Stricter than Chromium and Envoy: an invalid escape and a raw control
// character are refused where they pass them (escaped), and a ".." above
// the root is refused where they stay at the root: a browser resolves
// dot segments before sending, so such a path is a probe, and nginx
// refuses it too.
func canonicalize(p string) (string, error) {
	out := make([]byte, 0, len(p)+8)
	out = append(out, '/')
	i := 0
	if p != "" && isSlash(p[0]) {
		i = 1
	}
	for {
		j := i
		for j < len(p) && !isSlash(p[j]) {
			j++
		}
		seg := len(out)
		for k := i; k < j; k++ {
			c := p[k]
			switch pathCharClass[c] {
			case pass:
				out = append(out, c)
			case percent:
				if k+2 >= j || !isHex(p[k+1]) || !isHex(p[k+2]) {
					return "", ErrInvalidEscape
				}
				v := unhex(p[k+1])<<4 | unhex(p[k+2])
				switch {
				case v == 0:
					return "", ErrControl
				case isUnreserved(v):
					out = append(out, v)
				default:
					out = append(out, p[k:k+3]...)
				}
				k += 2
			case escape:
				out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
			case invalid:
				return "", ErrControl
			}
		}
		more := j < len(p)
		switch dotSegment(out[seg:]) {
		case 1: // "." : drop it and the slash after it
			out = out[:seg]
		case 2: // "..": drop it and the segment before it
			if seg == 1 {
				return "", ErrAboveRoot
			}
			out = out[:bytes.LastIndexByte(out[:seg-1], '/')+1]
		default:
			if more {
				out = append(out, '/')
			}
		}
		if !more {
			return string(out), nil
		}
		i = j + 1
	}
}

// dotSegment returns 1 for a "." segment, 2 for "..", and 0 otherwise;
// ".;x" and "..;x" count as "." and "..".
func dotSegment[S string | []byte](s S) int {
	if len(s) == 0 || s[0] != '.' {
		return 0
	}
	if len(s) == 1 || s[1] == ';' {
		return 1
	}
	if s[1] == '.' && (len(s) == 2 || s[2] == ';') {
		return 2
	}
	return 0
}

// mergeSlashes collapses every run of "/" into one. Envoy's
// PathUtil::mergeSlashes does the same except on a path of slashes only,
// which it leaves as "//"; hopwatch merges that to "/" too.
func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b = append(b, p[i])
	}
	return string(b)
}

// Character classes of a path byte, after Chromium's kPathCharLookup.
const (
	pass    = iota // copied as it is
	escape         // escaped as %XX
	percent        // starts an escape
	invalid        // refused: NUL and control characters
	slash          // "/" or "\": a segment boundary
)

// pathCharClass classifies every byte of a path. "#" and "?" never reach
// it: Normalize refuses the first and splits the query at the second.
var pathCharClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x20 || c == 0x7f:
			t[c] = invalid
		case c >= 0x80 || strings.IndexByte(" \"#<>?^`{|}", byte(c)) >= 0:
			t[c] = escape
		case c == '%':
			t[c] = percent
		case c == '/' || c == '\\':
			t[c] = slash
		}
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

func isSlash(c byte) bool { return c == '/' || c == '\\' }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isUnreserved reports whether c is an RFC 3986 unreserved character,
// which Chromium decodes when it arrives escaped.
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
