package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/pathnorm"
)

func TestPathNormalizationDefaults(t *testing.T) {
	l := mustParse(t, minimal).Listeners[0]
	if *l.NormalizePath != true || *l.MergeSlashes != true || l.PathWithEscapedSlashesAction != "unescape_and_redirect" {
		t.Errorf("defaults = normalize_path %v, merge_slashes %v, path_with_escaped_slashes_action %q; want true, true, unescape_and_redirect",
			*l.NormalizePath, *l.MergeSlashes, l.PathWithEscapedSlashesAction)
	}
	want := pathnorm.Options{NormalizePath: true, MergeSlashes: true, EscapedSlashes: pathnorm.UnescapeAndRedirect}
	if got := l.PathNormalizationOptions(); got != want {
		t.Errorf("PathNormalizationOptions() = %+v, want %+v", got, want)
	}
}

func TestPathNormalizationExplicit(t *testing.T) {
	for _, tt := range []struct {
		keys string
		want pathnorm.Options
	}{
		{"normalize_path: false\n    merge_slashes: false\n    path_with_escaped_slashes_action: keep_unchanged",
			pathnorm.Options{}},
		{"path_with_escaped_slashes_action: REJECT_REQUEST",
			pathnorm.Options{NormalizePath: true, MergeSlashes: true, EscapedSlashes: pathnorm.RejectRequest}},
		{"merge_slashes: false\n    path_with_escaped_slashes_action: unescape_and_forward",
			pathnorm.Options{NormalizePath: true, EscapedSlashes: pathnorm.UnescapeAndForward}},
	} {
		l := mustParse(t, edit(t, "stat_prefix: l", "stat_prefix: l\n    "+tt.keys)).Listeners[0]
		if got := l.PathNormalizationOptions(); got != tt.want {
			t.Errorf("%s: options = %+v, want %+v", tt.keys, got, tt.want)
		}
	}
}

func TestPathNormalizationErrors(t *testing.T) {
	for _, tt := range []struct{ keys, want string }{
		{"path_with_escaped_slashes_action: keep",
			`test.yaml:5:39: listeners[0].path_with_escaped_slashes_action: must be one of keep_unchanged, reject_request, unescape_and_redirect, unescape_and_forward (or Envoy's KEEP_UNCHANGED, REJECT_REQUEST, UNESCAPE_AND_REDIRECT, UNESCAPE_AND_FORWARD); got "keep"`},
		{"path_with_escaped_slashes_action: IMPLEMENTATION_SPECIFIC_DEFAULT",
			`test.yaml:5:39: listeners[0].path_with_escaped_slashes_action: must be one of keep_unchanged, reject_request, unescape_and_redirect, unescape_and_forward (or Envoy's KEEP_UNCHANGED, REJECT_REQUEST, UNESCAPE_AND_REDIRECT, UNESCAPE_AND_FORWARD); got "IMPLEMENTATION_SPECIFIC_DEFAULT"`},
	} {
		errs := parseErrs(t, edit(t, "stat_prefix: l", "stat_prefix: l\n    "+tt.keys))
		if !slices.Contains(errs, tt.want) {
			t.Errorf("%s: errors = %q, want %q", tt.keys, errs, tt.want)
		}
	}
	errs := parseErrs(t, edit(t, "stat_prefix: l", "stat_prefix: l\n    normalize_path: sometimes"))
	if len(errs) != 1 || !strings.Contains(errs[0], "listeners[0].normalize_path") {
		t.Errorf("normalize_path: sometimes: errors = %q, want one naming listeners[0].normalize_path", errs)
	}
}
