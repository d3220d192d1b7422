package config

import (
	"strings"

	"github.com/hopwatch/hopwatch/proxy/pathnorm"
)

// PathNormalization is how a listener's connection manager normalises
// request paths before routing, with the fields of Envoy's
// HttpConnectionManager. Route matching and the upstream both see the
// normalised path. It is inlined in Listener, so the keys sit beside
// stat_prefix as they do in Envoy. See docs/config.md, "Path
// normalisation", for the defaults and why an edge proxy needs them.
type PathNormalization struct {
	// NormalizePath removes "." and ".." segments (RFC 3986), reads "\" as
	// "/", decodes percent-encoded unreserved characters and escapes the
	// characters a path may not hold; a path it cannot normalise safely is
	// refused with 400. Default true (Envoy's is false).
	NormalizePath *bool `yaml:"normalize_path"`
	// MergeSlashes collapses runs of "/" into one, after NormalizePath.
	// Default true (Envoy's is false).
	MergeSlashes *bool `yaml:"merge_slashes"`
	// PathWithEscapedSlashesAction says what to do with %2F and %5C in a
	// path: keep_unchanged, reject_request (400), unescape_and_redirect
	// (307 to the unescaped path) or unescape_and_forward. Envoy's enum
	// spelling (UNESCAPE_AND_REDIRECT) is accepted too. Default
	// unescape_and_redirect (Envoy's is keep_unchanged).
	PathWithEscapedSlashesAction string `yaml:"path_with_escaped_slashes_action"`
}

// DefaultPathWithEscapedSlashesAction is path_with_escaped_slashes_action
// when not given: the client, hopwatch and the upstream all end up using
// one path, and a client that cannot follow the redirect gets a 400, never
// a path the upstream may read differently from the route.
const DefaultPathWithEscapedSlashesAction = "unescape_and_redirect"

// PathNormalizationOptions returns the listener's normalisation options
// for pathnorm.Normalize. It expects defaults applied and the config
// validated; an unknown action reads as the default.
func (p *PathNormalization) PathNormalizationOptions() pathnorm.Options {
	o := pathnorm.Options{
		NormalizePath: p.NormalizePath == nil || *p.NormalizePath,
		MergeSlashes:  p.MergeSlashes == nil || *p.MergeSlashes,
	}
	action, ok := pathnorm.ParseEscapedSlashesAction(p.PathWithEscapedSlashesAction)
	if !ok {
		action, _ = pathnorm.ParseEscapedSlashesAction(DefaultPathWithEscapedSlashesAction)
	}
	o.EscapedSlashes = action
	return o
}

func (p *PathNormalization) applyPathNormalizationDefaults() {
	setDefault(&p.NormalizePath, true)
	setDefault(&p.MergeSlashes, true)
	if p.PathWithEscapedSlashesAction == "" {
		p.PathWithEscapedSlashesAction = DefaultPathWithEscapedSlashesAction
	}
}

func (v *validator) pathNormalization(lp string, p *PathNormalization) {
	if _, ok := pathnorm.ParseEscapedSlashesAction(p.PathWithEscapedSlashesAction); !ok {
		names := pathnorm.EscapedSlashesActionNames()
		upper := make([]string, len(names))
		for i, n := range names {
			upper[i] = strings.ToUpper(n)
		}
		v.errorf(fieldPath(lp, "path_with_escaped_slashes_action"), "must be one of %s (or Envoy's %s); got %q",
			strings.Join(names, ", "), strings.Join(upper, ", "), p.PathWithEscapedSlashesAction)
	}
}
