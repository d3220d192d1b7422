package pathnorm

import (
	"errors"
	"strings"
	"testing"
)

// Option sets the tests use, named after what they turn on.
var (
	normalizeOnly = Options{NormalizePath: true}
	mergeOnly     = Options{MergeSlashes: true}
	forwardOnly   = Options{EscapedSlashes: UnescapeAndForward}
	edge          = Options{NormalizePath: true, MergeSlashes: true, EscapedSlashes: UnescapeAndRedirect}
)

type normCase struct {
	in, want string // want "" with err set: refused
	err      error
}

func runCases(t *testing.T, o Options, cases []normCase) {
	t.Helper()
	for _, c := range cases {
		got, _, err := Normalize(c.in, o)
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("Normalize(%q, %+v) = %q, %v; want error %v", c.in, o, got, err, c.err)
		case c.err == nil && (err != nil || got != c.want):
			t.Errorf("Normalize(%q, %+v) = %q, %v; want %q", c.in, o, got, err, c.want)
		}
	}
}

// Envoy's PathUtilityTest.AlreadyNormalPaths, NormalizeValidPaths and
// NormalizeCasePath (test/common/http/path_utility_test.cc), with
// hopwatch's answer where it is stricter: a ".." above the root is
// refused, not clamped to "/".
func TestNormalizePathEnvoyCases(t *testing.T) {
	runCases(t, normalizeOnly, []normCase{
		// AlreadyNormalPaths
		{in: "/xyz", want: "/xyz"},
		{in: "/x/y/z", want: "/x/y/z"},
		// NormalizeValidPaths
		{in: "/a/b/../c", want: "/a/c"},
		{in: "/a/b/./c", want: "/a/b/c"},
		{in: "a/b/../c", want: "/a/c"},
		{in: "/a/b/../../../../c", err: ErrAboveRoot}, // Envoy: "/c"
		{in: `/a/..\c`, want: "/c"},
		{in: "/%c0%af", want: "/%c0%af"},
		{in: "/%5c%25", want: "/%5c%25"},
		{in: "/a/b/%2E%2E/c", want: "/a/c"},
		{in: "/xyz/..;foo=bar/abc", want: "/abc"},
		{in: "/..;foo=bar/abc", err: ErrAboveRoot}, // Envoy: "/abc"
		{in: "/xyz/..;foo=bar", want: "/"},
		{in: "/xyz/.;foo=bar/abc", want: "/xyz/abc"},
		{in: "/.;foo=bar/abc", want: "/abc"},
		{in: "/xyz/.;foo=bar", want: "/xyz/"},
		{in: "/xyz/..;foo=bar/.;v1=2,v2=3/abc", want: "/abc"},
		{in: "/..;foo=bar/abc/.;mmm", err: ErrAboveRoot},       // Envoy: "/abc/"
		{in: "/.;aaa/..;foo=bar/abc/.;mmm", err: ErrAboveRoot}, // Envoy: "/abc/"
		{in: "/xyz/..;foo=bar/.;fff=zzz", want: "/"},
		{in: "/xyz/..;foo=bar/.;fff=zzz?blah=woops", want: "/?blah=woops"},
		{in: "/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", want: "/remain;blah-bluh?query"},
		{in: "/xyz/...;foo", want: "/xyz/...;foo"},
		{in: "/xyz/..foo", want: "/xyz/..foo"},
		// NormalizeCasePath
		{in: "/A/B/C", want: "/A/B/C"},
		{in: "/a/b/%2e%2e/c", want: "/a/c"},
		{in: "/a/%2F%2f/c", want: "/a/%2F%2f/c"},
		// InvalidPaths
		{in: "/xyz/.%00../abc", err: ErrControl},
		{in: "/xyz/%00.%00./abc", err: ErrControl},
		{in: "/xyz/AAAAA%%0000/abc", err: ErrInvalidEscape}, // Envoy refuses it for the %00
	})
}

// Chromium's canonicalisation as Envoy runs it, and where hopwatch refuses
// what Chromium would pass.
func TestNormalizePathCanonical(t *testing.T) {
	runCases(t, normalizeOnly, []normCase{
		{in: "", want: "/"},
		{in: "/", want: "/"},
		{in: "/.", want: "/"},
		{in: "/./", want: "/"},
		{in: "/a/.", want: "/a/"},
		{in: "/a/..", want: "/"},
		{in: "/a/b/..", want: "/a/"},
		{in: "/a/...", want: "/a/..."},
		{in: "/a/.b/c.", want: "/a/.b/c."},
		{in: "/%2e", want: "/"},
		{in: "/%2E/admin", want: "/admin"},
		{in: "/a/.%2e/b", want: "/b"},
		{in: "/a/%2e./b", want: "/b"},
		{in: "/x/%2e%2e;x/admin", want: "/admin"}, // escaped dots with parameters: stricter than Envoy
		{in: "/a//../b", want: "/a/b"},            // dot segments before merging, as Envoy
		{in: "/a//b", want: "/a//b"},              // merging is merge_slashes' job
		{in: `\a\b`, want: "/a/b"},
		{in: `/a\..\b`, want: "/b"},
		{in: "/%7e%41%5a%61%7a%30%39%2d%5f", want: "/~AZaz09-_"},
		{in: "/a%2a%2A", want: "/a%2a%2A"},         // a reserved character stays escaped, its case kept
		{in: "/%252e%252e/", want: "/%252e%252e/"}, // decoded once, never twice
		{in: "/a b", want: "/a%20b"},
		{in: "/caf\xc3\xa9", want: "/caf%C3%A9"},
		{in: "/a\"<>^`{|}", want: "/a%22%3C%3E%5E%60%7B%7C%7D"},
		{in: "/a!$&'()*+,;=:@[]~", want: "/a!$&'()*+,;=:@[]~"},
		{in: "/a?x=../y&z=%zz//", want: "/a?x=../y&z=%zz//"}, // the query is never touched
		{in: "/a/./b?x=/./", want: "/a/b?x=/./"},
		{in: "/a%", err: ErrInvalidEscape},
		{in: "/a%4", err: ErrInvalidEscape},
		{in: "/a%zz", err: ErrInvalidEscape},
		{in: "/a%4/", err: ErrInvalidEscape},
		{in: "/a%00", err: ErrControl},
		{in: "/a\x00b", err: ErrControl},
		{in: "/a\x01b", err: ErrControl},
		{in: "/a\x7fb", err: ErrControl},
		{in: "/a%01b", want: "/a%01b"}, // escaped, harmless: kept as Chromium keeps it
		{in: "/..", err: ErrAboveRoot},
		{in: "/../admin", err: ErrAboveRoot},
		{in: "/a/../../admin", err: ErrAboveRoot},
		{in: "/%2e%2e/admin", err: ErrAboveRoot},
		{in: "/a#b", err: ErrFragment},
		{in: "/a?b#c", err: ErrFragment},
	})
}

// Envoy's PathUtilityTest.MergeSlashes, and the one case where hopwatch
// differs: a path of slashes only.
func TestMergeSlashesEnvoyCases(t *testing.T) {
	runCases(t, mergeOnly, []normCase{
		{in: "", want: ""},
		{in: "a//b/c", want: "a/b/c"},
		{in: "/a//b/c/", want: "/a/b/c/"},
		{in: "a//b/c/", want: "a/b/c/"},
		{in: "/a", want: "/a"},
		{in: "//a/b/c", want: "/a/b/c"},
		{in: "/a//b/c", want: "/a/b/c"},
		{in: "/a/b/c//", want: "/a/b/c/"},
		{in: "/a///b/c", want: "/a/b/c"},
		{in: "/a////b/c", want: "/a/b/c"},
		{in: "/a//b?a=///c", want: "/a/b?a=///c"},
		{in: "/a//b?", want: "/a/b?"},
		{in: "//a/?b", want: "/a/?b"},
		{in: "//", want: "/"},  // Envoy: "//"
		{in: "///", want: "/"}, // Envoy: "//"
	})
}

// Envoy's PathUtilityTest.UnescapeSlashes, through unescape_and_forward
// with nothing else on.
func TestUnescapeSlashesEnvoyCases(t *testing.T) {
	runCases(t, forwardOnly, []normCase{
		{in: "", want: ""},
		{in: "%2f%2F", want: "//"},
		{in: "/a%2Fb%2fc/", want: "/a/b/c/"},
		{in: "%2b", want: "%2b"},
		{in: "/a/b/c", want: "/a/b/c"},
		{in: "%2", want: "%2"},
		{in: "%", want: "%"},
		{in: "/abc%2", want: "/abc%2"},
		{in: "foo%", want: "foo%"},
		{in: "/a%2F", want: "/a/"},
		{in: "%2fa/", want: "/a/"},
		{in: "%%2fa/", want: "%/a/"},
		{in: "%2%2fa/", want: "%2/a/"},
		{in: "%5c%5C", want: `\\`},
		{in: "/a%5Cb%5cc/", want: `/a\b\c/`},
		{in: "/a%5C", want: `/a\`},
		{in: "%5ca/", want: `\a/`},
		{in: "/x/%2E%2e/z%2f%2Fabc%5C../def", want: `/x/%2E%2e/z//abc\../def`},
		{in: "%2fa%5Cb%2fc%5c", want: `/a\b/c\`},
		{in: "%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%", want: `/a\b/c\?%2fabcd%5C%%2f%`},
	})
}

// The escaped-slashes actions in Envoy's order: unescape, then normalise,
// then merge; a redirect carries the final path.
func TestEscapedSlashesActions(t *testing.T) {
	tests := []struct {
		in       string
		action   EscapedSlashesAction
		want     string
		redirect bool
		err      error
	}{
		{in: "/a%2Fb", action: KeepUnchanged, want: "/a%2Fb"},
		{in: "/a%2Fb", action: RejectRequest, err: ErrEscapedSlash},
		{in: "/a%5cb", action: RejectRequest, err: ErrEscapedSlash},
		{in: "/a/b", action: RejectRequest, want: "/a/b"},
		{in: "/a%2Fb?x=%2F", action: UnescapeAndRedirect, want: "/a/b?x=%2F", redirect: true},
		{in: "/a/b?x=%2F", action: UnescapeAndRedirect, want: "/a/b?x=%2F"},
		{in: "/a%2Fb", action: UnescapeAndForward, want: "/a/b"},
		{in: "/admin%2f..", action: UnescapeAndRedirect, want: "/", redirect: true},
		{in: "/x%2F..%2Fadmin", action: UnescapeAndForward, want: "/admin"},
		{in: "/x%5C..%5Cadmin", action: UnescapeAndForward, want: "/admin"},
		{in: "/a%2F%2Fb", action: UnescapeAndForward, want: "/a/b"}, // merged after unescaping
		{in: "/%2F..%2F..%2Fadmin", action: UnescapeAndForward, err: ErrAboveRoot},
		{in: "/%252F", action: UnescapeAndRedirect, want: "/%252F"}, // %25 stays: no redirect loop
	}
	for _, tt := range tests {
		o := Options{NormalizePath: true, MergeSlashes: true, EscapedSlashes: tt.action}
		got, redirect, err := Normalize(tt.in, o)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("Normalize(%q, %v) = %q, %v; want error %v", tt.in, tt.action, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || redirect != tt.redirect {
			t.Errorf("Normalize(%q, %v) = %q, redirect %v, %v; want %q, redirect %v", tt.in, tt.action, got, redirect, err, tt.want, tt.redirect)
		}
	}
}

// The paths of the traversal probes, under hopwatch's defaults: none may
// come out as anything but "/admin…" or an error.
func TestTraversalProbes(t *testing.T) {
	for _, in := range []string{
		"/x/../admin", "/x/%2e%2e/admin", "/./admin", "/%2E/admin", "//admin",
		"/x/..;/admin", `/x\..\admin`, "/x/./../admin", "/x//..//admin",
		"/%61dmin", "/x/%2E%2e/admin",
	} {
		got, _, err := Normalize(in, edge)
		if err != nil {
			t.Errorf("Normalize(%q) refused it (%v); want /admin", in, err)
			continue
		}
		if !strings.HasPrefix(got, "/admin") && got != "/x/admin" {
			t.Errorf("Normalize(%q) = %q, want /admin", in, got)
		}
	}
}

func TestParseEscapedSlashesAction(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want EscapedSlashesAction
		ok   bool
	}{
		{"keep_unchanged", KeepUnchanged, true},
		{"KEEP_UNCHANGED", KeepUnchanged, true},
		{"reject_request", RejectRequest, true},
		{"REJECT_REQUEST", RejectRequest, true},
		{"unescape_and_redirect", UnescapeAndRedirect, true},
		{"UNESCAPE_AND_REDIRECT", UnescapeAndRedirect, true},
		{"unescape_and_forward", UnescapeAndForward, true},
		{"UNESCAPE_AND_FORWARD", UnescapeAndForward, true},
		{"IMPLEMENTATION_SPECIFIC_DEFAULT", KeepUnchanged, false},
		{"keep", KeepUnchanged, false},
		{"", KeepUnchanged, false},
	} {
		got, ok := ParseEscapedSlashesAction(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseEscapedSlashesAction(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != strings.ToLower(tt.in) {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), strings.ToLower(tt.in))
		}
	}
}

// A path that is already normal costs no allocation.
func TestNormalPathDoesNotAllocate(t *testing.T) {
	for _, in := range []string{"/", "/api/v1/users/42?limit=10&q=../x", "/a%20b/c%2Fd/%C3%A9", "/a/.b/c..d/..."} {
		var out string
		allocs := testing.AllocsPerRun(100, func() { out, _, _ = Normalize(in, Options{NormalizePath: true, MergeSlashes: true}) })
		if allocs != 0 || out != in {
			t.Errorf("Normalize(%q) = %q with %v allocations; want it unchanged with none", in, out, allocs)
		}
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, bc := range []struct{ name, path string }{
		{"normal", "/api/v1/users/42/orders?limit=10&offset=20"},
		{"normal_escaped", "/api/v1/search/caf%C3%A9%20au%20lait?q=x"},
		{"dot_segments", "/api/v1/../v2/./users/%2e%2e/orders?limit=10"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Normalize(bc.path, edge); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
