// Package route compiles one listener's virtual hosts and routes into a
// Table and answers the router's per-request questions: which virtual host
// serves this :authority, which route matches this request, which cluster
// it goes to, and how its headers, path and host change on the way.
//
// Matching follows Envoy's route configuration (virtual host domains,
// prefix/path/safe_regex matches, header and query parameter matchers,
// weighted clusters, redirects, direct responses, headers_to_add) so that an
// Envoy route table reads the same here. Everything that can be decided
// once is decided in NewTable; the per-request path does not allocate in
// the common case. A Table is immutable and safe for concurrent use; a
// configuration reload builds a new one.
package route

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/ratelimit"
	"github.com/hopwatch/hopwatch/proxy/retry"
)

// Options carry what the configuration of one listener does not say.
type Options struct {
	// NodeHostname is the value of the %HOSTNAME% header variable. Empty
	// makes %HOSTNAME% expand to nothing.
	NodeHostname string
}

// Table is one listener's compiled virtual hosts.
type Table struct {
	vhosts []*VirtualHost
	exact  map[string]*VirtualHost
	// suffixes and prefixes hold the wildcard domains grouped by the
	// length of their fixed part, longest first, so that the longest
	// wildcard is found with one map lookup per distinct length.
	suffixes []wildcardGroup
	prefixes []wildcardGroup
	fallback *VirtualHost
}

type wildcardGroup struct {
	n     int
	hosts map[string]*VirtualHost
}

// VirtualHost is a compiled virtual host: a set of domains and its routes.
type VirtualHost struct {
	// Name identifies the virtual host in stats (vhost.<name>.*).
	Name string
	// Retry is the virtual host's retry policy, used by routes without
	// their own; nil when none is configured.
	Retry *retry.Policy
	// Mutation holds the virtual host's header changes; nil when there are none.
	Mutation *HeaderMutation

	// localRateLimit and rateLimits are inherited by the host's routes.
	localRateLimit *ratelimit.Local
	rateLimits     []*ratelimit.Policy

	routes []*Route
}

// NewTable compiles the virtual hosts of one listener. It checks what it
// relies on (domains, matchers, regular expressions, actions, header
// variables) and reports the first problem with its field path, such as
// virtual_hosts[1].routes[0].match.safe_regex.
func NewTable(vhosts []config.VirtualHost, opts Options) (*Table, error) {
	t := &Table{exact: make(map[string]*VirtualHost)}
	suffixes := make(map[int]map[string]*VirtualHost)
	prefixes := make(map[int]map[string]*VirtualHost)
	owner := make(map[string]string) // domain → virtual host name, for duplicate errors

	for i := range vhosts {
		cv := &vhosts[i]
		path := fmt.Sprintf("virtual_hosts[%d]", i)
		vh, err := compileVirtualHost(cv, path, opts)
		if err != nil {
			return nil, err
		}
		t.vhosts = append(t.vhosts, vh)
		if len(cv.Domains) == 0 {
			return nil, fmt.Errorf("%s.domains: at least one domain is required", path)
		}
		for j, d := range cv.Domains {
			dpath := fmt.Sprintf("%s.domains[%d]", path, j)
			kind, key, err := parseDomain(d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", dpath, err)
			}
			id := kind + key
			if prev, dup := owner[id]; dup {
				return nil, fmt.Errorf("%s: domain %q is already used by virtual host %q; domains must be unique within a listener", dpath, d, prev)
			}
			owner[id] = cv.Name
			switch kind {
			case "*":
				t.fallback = vh
			case "=":
				t.exact[key] = vh
			case "suffix":
				addWildcard(suffixes, key, vh)
			case "prefix":
				addWildcard(prefixes, key, vh)
			}
		}
	}
	t.suffixes = sortGroups(suffixes)
	t.prefixes = sortGroups(prefixes)
	return t, nil
}

func addWildcard(groups map[int]map[string]*VirtualHost, key string, vh *VirtualHost) {
	g := groups[len(key)]
	if g == nil {
		g = make(map[string]*VirtualHost)
		groups[len(key)] = g
	}
	g[key] = vh
}

func sortGroups(groups map[int]map[string]*VirtualHost) []wildcardGroup {
	out := make([]wildcardGroup, 0, len(groups))
	for n, hosts := range groups {
		out = append(out, wildcardGroup{n: n, hosts: hosts})
	}
	slices.SortFunc(out, func(a, b wildcardGroup) int { return cmp.Compare(b.n, a.n) })
	return out
}

// parseDomain classifies a configured domain. kind is "*" (any host), "="
// (exact), "suffix" (*.example.com; key is ".example.com") or "prefix"
// (www.example.*; key is "www.example."). Keys are lower-case.
func parseDomain(d string) (kind, key string, err error) {
	d = strings.ToLower(d)
	switch {
	case d == "":
		return "", "", fmt.Errorf("empty domain")
	case d == "*":
		return "*", "", nil
	case strings.ContainsAny(d, " \t/?#@"):
		return "", "", fmt.Errorf("domain %q contains a character that cannot appear in a host", d)
	}
	if hasPort(d) {
		return "", "", fmt.Errorf("domain %q has a port; ports are stripped from :authority before matching, so write the host alone", d)
	}
	star := strings.Count(d, "*")
	switch {
	case star == 0:
		return "=", d, nil
	case star == 1 && d[0] == '*':
		return "suffix", d[1:], nil
	case star == 1 && d[len(d)-1] == '*':
		return "prefix", d[:len(d)-1], nil
	default:
		return "", "", fmt.Errorf("domain %q: a wildcard is allowed only as the whole domain (*), at the start (*.example.com) or at the end (example.*)", d)
	}
}

// hasPort reports whether a host has a :port outside IPv6 brackets.
func hasPort(h string) bool {
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		return end >= 0 && end+1 < len(h)
	}
	return strings.Count(h, ":") == 1
}

// stripPort removes a :port from an authority. A bracketed IPv6 literal
// keeps its brackets; a bare IPv6 address (several colons, no brackets)
// has no port and is returned as is.
func stripPort(authority string) string {
	if strings.HasPrefix(authority, "[") {
		if end := strings.IndexByte(authority, ']'); end >= 0 {
			return authority[:end+1]
		}
		return authority
	}
	i := strings.IndexByte(authority, ':')
	if i < 0 || strings.IndexByte(authority[i+1:], ':') >= 0 {
		return authority
	}
	return authority[:i]
}

// SelectVirtualHost returns the virtual host for an :authority (or Host)
// value, or nil when none matches. As in Envoy, the port is ignored and
// case does not matter; an exact domain wins over the longest suffix
// wildcard (*.example.com), which wins over the longest prefix wildcard
// (example.*), which wins over *. A wildcard stands for at least one
// character. It does not allocate for a lower-case authority.
func (t *Table) SelectVirtualHost(authority string) *VirtualHost {
	if t == nil {
		return nil
	}
	// strings.ToLower returns its argument when there is nothing to lower.
	host := strings.ToLower(stripPort(authority))
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, g := range t.suffixes {
		if len(host) > g.n {
			if vh, ok := g.hosts[host[len(host)-g.n:]]; ok {
				return vh
			}
		}
	}
	for _, g := range t.prefixes {
		if len(host) > g.n {
			if vh, ok := g.hosts[host[:g.n]]; ok {
				return vh
			}
		}
	}
	return t.fallback
}

// VirtualHosts returns the compiled virtual hosts in configuration order.
// The slice is shared; do not modify it.
func (t *Table) VirtualHosts() []*VirtualHost { return t.vhosts }

// Routes returns the virtual host's routes in match order. The slice is
// shared; do not modify it.
func (vh *VirtualHost) Routes() []*Route { return vh.routes }

func compileVirtualHost(cv *config.VirtualHost, path string, opts Options) (*VirtualHost, error) {
	if cv.Name == "" {
		return nil, fmt.Errorf("%s.name: required", path)
	}
	vh := &VirtualHost{Name: cv.Name}
	var err error
	if vh.Retry, err = retry.Compile(cv.RetryPolicy); err != nil {
		return nil, fmt.Errorf("%s.retry_policy.%w", path, err)
	}
	if vh.Mutation, err = NewHeaderMutation(cv.HeadersMutation, opts.NodeHostname); err != nil {
		return nil, fmt.Errorf("%s.%w", path, err)
	}
	if err := vh.compileRateLimits(cv, path); err != nil {
		return nil, err
	}
	for i := range cv.Routes {
		rt, err := compileRoute(&cv.Routes[i], vh, fmt.Sprintf("%s.routes[%d]", path, i), opts)
		if err != nil {
			return nil, err
		}
		vh.routes = append(vh.routes, rt)
	}
	return vh, nil
}
