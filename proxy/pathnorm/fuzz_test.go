package pathnorm

import (
	"strings"
	"testing"
)

// FuzzNormalize checks the properties the proxy relies on, for every
// combination of options: Normalize never panics; its output is a fixed
// point (normalising it again changes nothing and never redirects); the
// query is never touched; with normalize_path the path starts with "/"
// and has no "." or ".." segment, no "\", and only escapes Chromium keeps;
// with merge_slashes it has no "//"; and the allocation-free check agrees
// with the full normalisation.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"/", "/a/b?x=../y", "/x/../admin", "/../admin", "/x/%2e%2e/admin", "/./admin",
		"/%2E/admin", "//admin", "/admin%2f..", `/a\..\b`, "/..;x/a", "/a/.%2E;p/b",
		"/%%2f", "/%2%2f5c", "/a%zz", "/a%00", "/caf\xc3\xa9 x", "a//b", "/a#b", "",
	} {
		f.Add(s, true, true, uint8(UnescapeAndRedirect))
	}
	f.Fuzz(func(t *testing.T, target string, normalize, merge bool, action uint8) {
		o := Options{NormalizePath: normalize, MergeSlashes: merge, EscapedSlashes: EscapedSlashesAction(action % 4)}
		out, _, err := Normalize(target, o)
		if err != nil {
			return
		}
		again, redirect, err := Normalize(out, o)
		if err != nil || again != out || redirect {
			t.Fatalf("not a fixed point: %q -> %q -> %q (redirect %v, %v)", target, out, again, redirect, err)
		}
		path, query, _ := strings.Cut(out, "?")
		if _, inQuery, ok := strings.Cut(target, "?"); ok && inQuery != query {
			t.Fatalf("query changed: %q -> %q", target, out)
		}
		if normalize {
			checkCanonical(t, target, path)
		}
		if merge && strings.Contains(path, "//") {
			t.Fatalf("%q -> %q: a // is left", target, out)
		}
		in, _, _ := strings.Cut(target, "?")
		if isNormal(in, o) {
			if p, _, err := normalizePath(in, o); err != nil || p != in {
				t.Fatalf("isNormal(%q) but normalizePath gives %q, %v", in, p, err)
			}
		}
	})
}

func checkCanonical(t *testing.T, target, path string) {
	t.Helper()
	if !strings.HasPrefix(path, "/") || strings.ContainsRune(path, '\\') {
		t.Fatalf("%q -> %q: does not start with / or holds \\", target, path)
	}
	for seg := range strings.SplitSeq(path[1:], "/") {
		if dotSegment(seg) != 0 {
			t.Fatalf("%q -> %q: dot segment %q left", target, path, seg)
		}
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '%' {
			if i+2 >= len(path) || !isHex(path[i+1]) || !isHex(path[i+2]) {
				t.Fatalf("%q -> %q: invalid escape at %d", target, path, i)
			}
			if v := unhex(path[i+1])<<4 | unhex(path[i+2]); v == 0 || isUnreserved(v) {
				t.Fatalf("%q -> %q: escape %q should have been decoded or refused", target, path, path[i:i+3])
			}
			i += 2
			continue
		}
		if cl := pathCharClass[c]; cl != pass && cl != slash {
			t.Fatalf("%q -> %q: byte %q should have been escaped or refused", target, path, c)
		}
	}
}
