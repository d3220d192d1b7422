package route

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/hopwatch/hopwatch/proxy/config"
)

type pathKind uint8

const (
	pathPrefix pathKind = iota + 1
	pathExact
	pathRegex
)

// matcher is a compiled config.RouteMatch.
type matcher struct {
	kind          pathKind
	value         string // prefix or exact path
	caseSensitive bool
	re            *regexp.Regexp
	headers       []headerMatcher
	query         []queryMatcher
}

type valueKind uint8

const (
	matchExact valueKind = iota + 1
	matchPrefix
	matchSuffix
	matchContains
	matchRegex
	matchPresent
)

// headerMatcher is a compiled config.HeaderMatcher.
type headerMatcher struct {
	// name is canonical (Content-Type) for ordinary headers, or one of
	// :authority, :method, :path, :scheme.
	name    string
	kind    valueKind
	value   string
	re      *regexp.Regexp
	present bool // for matchPresent: true requires the header, false its absence
	invert  bool
}

// queryMatcher is a compiled config.QueryParameterMatcher.
type queryMatcher struct {
	name    string
	kind    valueKind // matchExact, matchRegex or matchPresent
	value   string
	re      *regexp.Regexp
	present bool
}

// compileFullRegex compiles an RE2 expression that must match a whole
// value, as Envoy's safe_regex does. The expression is compiled on its own
// first so that one like "a)|(b" cannot escape the anchoring group.
func compileFullRegex(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("invalid RE2 expression %q: %w", expr, err)
	}
	return regexp.Compile(`^(?:` + expr + `)$`)
}

func compileMatch(m *config.RouteMatch, path string) (matcher, error) {
	out := matcher{caseSensitive: m.CaseSensitive == nil || *m.CaseSensitive}
	set := 0
	if m.Prefix != nil {
		set++
		out.kind, out.value = pathPrefix, *m.Prefix
	}
	if m.Path != nil {
		set++
		out.kind, out.value = pathExact, *m.Path
	}
	if m.SafeRegex != nil {
		set++
		out.kind = pathRegex
		re, err := compileFullRegex(*m.SafeRegex)
		if err != nil {
			return out, fmt.Errorf("%s.safe_regex: %w", path, err)
		}
		out.re = re
	}
	if set != 1 {
		return out, fmt.Errorf("%s: exactly one of prefix, path and safe_regex is required, found %d", path, set)
	}
	for i := range m.Headers {
		hm, err := compileHeaderMatcher(&m.Headers[i])
		if err != nil {
			return out, fmt.Errorf("%s.headers[%d].%w", path, i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i := range m.QueryParameters {
		qm, err := compileQueryMatcher(&m.QueryParameters[i])
		if err != nil {
			return out, fmt.Errorf("%s.query_parameters[%d].%w", path, i, err)
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

var pseudoHeaders = []string{":authority", ":method", ":path", ":scheme"}

func compileHeaderMatcher(h *config.HeaderMatcher) (headerMatcher, error) {
	out := headerMatcher{invert: h.InvertMatch}
	switch name := strings.ToLower(h.Name); {
	case name == "":
		return out, fmt.Errorf("name: required")
	case strings.HasPrefix(name, ":"):
		found := false
		for _, p := range pseudoHeaders {
			found = found || p == name
		}
		if !found {
			return out, fmt.Errorf("name: unknown pseudo-header %q (allowed: %s)", h.Name, strings.Join(pseudoHeaders, ", "))
		}
		out.name = name
	case name == "host":
		// Go keeps Host out of Request.Header; it is the :authority.
		out.name = ":authority"
	case !httpguts.ValidHeaderFieldName(name):
		return out, fmt.Errorf("name: %q is not a valid header name", h.Name)
	default:
		out.name = http.CanonicalHeaderKey(name)
	}
	set := 0
	pick := func(k valueKind, v *string) {
		if v != nil {
			set++
			out.kind, out.value = k, *v
		}
	}
	pick(matchExact, h.ExactMatch)
	pick(matchPrefix, h.PrefixMatch)
	pick(matchSuffix, h.SuffixMatch)
	pick(matchContains, h.ContainsMatch)
	pick(matchRegex, h.SafeRegexMatch)
	if h.PresentMatch != nil {
		set++
		out.kind, out.present = matchPresent, *h.PresentMatch
	}
	if set != 1 {
		return out, fmt.Errorf("%s: exactly one of exact_match, prefix_match, suffix_match, contains_match, safe_regex_match and present_match is required, found %d", h.Name, set)
	}
	if out.kind == matchRegex {
		re, err := compileFullRegex(out.value)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match: %w", err)
		}
		out.re = re
	}
	return out, nil
}

func compileQueryMatcher(q *config.QueryParameterMatcher) (queryMatcher, error) {
	out := queryMatcher{name: q.Name}
	if q.Name == "" {
		return out, fmt.Errorf("name: required")
	}
	set := 0
	if q.ExactMatch != nil {
		set++
		out.kind, out.value = matchExact, *q.ExactMatch
	}
	if q.SafeRegexMatch != nil {
		set++
		out.kind = matchRegex
		re, err := compileFullRegex(*q.SafeRegexMatch)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match: %w", err)
		}
		out.re = re
	}
	if q.PresentMatch != nil {
		set++
		out.kind, out.present = matchPresent, *q.PresentMatch
	}
	switch set {
	case 0:
		// Envoy treats a matcher with only a name as "present".
		out.kind, out.present = matchPresent, true
	case 1:
	default:
		return out, fmt.Errorf("%s: at most one of exact_match, safe_regex_match and present_match may be set, found %d", q.Name, set)
	}
	return out, nil
}

// matches reports whether r satisfies every part of the match. The path
// is r.URL.Path: decoded, without the query. Matching the decoded path
// means /%61dmin cannot slip past a route for /admin.
func (m *matcher) matches(r *http.Request) bool {
	p := ""
	if r.URL != nil {
		p = r.URL.Path
	}
	switch m.kind {
	case pathPrefix:
		if len(p) < len(m.value) || !m.equal(p[:len(m.value)], m.value) {
			return false
		}
	case pathExact:
		if !m.equal(p, m.value) {
			return false
		}
	case pathRegex:
		if !m.re.MatchString(p) {
			return false
		}
	default:
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		raw := ""
		if r.URL != nil {
			raw = r.URL.RawQuery
		}
		for i := range m.query {
			if !m.query[i].matches(raw) {
				return false
			}
		}
	}
	return true
}

func (m *matcher) equal(a, b string) bool {
	if m.caseSensitive {
		return a == b
	}
	return asciiEqualFold(a, b)
}

// asciiEqualFold is strings.EqualFold restricted to ASCII, which is what
// Envoy's case_sensitive: false compares.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// requestScheme is the scheme the client used.
func requestScheme(r *http.Request) string {
	if r.URL != nil && r.URL.Scheme != "" {
		return strings.ToLower(r.URL.Scheme)
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// headerValue returns a header as Envoy sees it: all values joined by ","
// (allocating only when there are several), and whether it is present.
func (h *headerMatcher) headerValue(r *http.Request) (string, bool) {
	switch h.name {
	case ":authority":
		return r.Host, r.Host != ""
	case ":method":
		return r.Method, r.Method != ""
	case ":scheme":
		return requestScheme(r), true
	case ":path":
		// RequestURI is what the client sent, unless it used the
		// absolute form (a forward-proxy request), which :path never is.
		if strings.HasPrefix(r.RequestURI, "/") {
			return r.RequestURI, true
		}
		if r.URL != nil {
			return r.URL.RequestURI(), true
		}
		return "", false
	}
	vs := r.Header[h.name]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	default:
		return strings.Join(vs, ","), true
	}
}

func (h *headerMatcher) matches(r *http.Request) bool {
	v, present := h.headerValue(r)
	var ok bool
	switch {
	case h.kind == matchPresent:
		ok = present == h.present
	case !present:
		ok = false
	default:
		ok = matchValue(h.kind, v, h.value, h.re)
	}
	return ok != h.invert
}

func matchValue(kind valueKind, v, want string, re *regexp.Regexp) bool {
	switch kind {
	case matchExact:
		return v == want
	case matchPrefix:
		return strings.HasPrefix(v, want)
	case matchSuffix:
		return strings.HasSuffix(v, want)
	case matchContains:
		return strings.Contains(v, want)
	case matchRegex:
		return re.MatchString(v)
	}
	return false
}

func (q *queryMatcher) matches(rawQuery string) bool {
	v, present := firstQueryValue(rawQuery, q.name)
	switch {
	case q.kind == matchPresent:
		return present == q.present
	case !present:
		return false
	default:
		return matchValue(q.kind, v, q.value, q.re)
	}
}

// firstQueryValue finds the first value of a query parameter, decoding
// keys and values as url.ParseQuery does, but without building the whole
// map and without allocating unless something needs unescaping. Pairs with
// invalid escapes are skipped, as ParseQuery skips them.
func firstQueryValue(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, err := queryUnescape(k)
		if err != nil || k != name {
			continue
		}
		v, err = queryUnescape(v)
		if err != nil {
			continue
		}
		return v, true
	}
	return "", false
}

func queryUnescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	return url.QueryUnescape(s)
}
