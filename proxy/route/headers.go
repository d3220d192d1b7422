package route

import (
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Vars are the per-request values that header variables expand to.
type Vars struct {
	// RemoteAddr is the downstream peer, host:port, for
	// %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%.
	RemoteAddr string
	// UpstreamCluster is the chosen cluster, for %UPSTREAM_CLUSTER%.
	UpstreamCluster string
	// Request holds the request headers, for %REQ(name)%.
	Request http.Header
}

// HeaderMutation is a compiled config.HeadersMutation: headers to remove
// and headers to add, whose values may use the variables
// %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %REQ(name)%, %UPSTREAM_CLUSTER%
// and %HOSTNAME%, and "%%" for a literal percent sign. Its methods accept
// a nil receiver, which changes nothing.
type HeaderMutation struct {
	requestAdd     []headerAdd
	requestRemove  []string
	responseAdd    []headerAdd
	responseRemove []string
}

type headerAdd struct {
	key    string // canonical
	value  format
	append bool
}

type segmentKind uint8

const (
	segLiteral segmentKind = iota
	segRemoteAddr
	segUpstreamCluster
	segRequestHeader
)

type segment struct {
	kind segmentKind
	text string // the literal, or the canonical header name for segRequestHeader
}

// format is a header value split into literal text and variables.
// %HOSTNAME% is known when the table is built, so it is folded into the
// literal text.
type format struct {
	segments []segment
}

var variableNames = "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%, %REQ(name)%, %UPSTREAM_CLUSTER%, %HOSTNAME%, %%"

// parseFormat compiles a header value with variables.
func parseFormat(s, hostname string) (format, error) {
	var f format
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f.segments = append(f.segments, segment{kind: segLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if end < 0 {
			return format{}, fmt.Errorf("unterminated variable at byte %d of %q (write %%%% for a literal %%; variables: %s)", i, s, variableNames)
		}
		name := s[i+1 : i+1+end]
		switch {
		case name == "":
			lit.WriteByte('%')
		case name == "HOSTNAME":
			lit.WriteString(hostname)
		case name == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
			flush()
			f.segments = append(f.segments, segment{kind: segRemoteAddr})
		case name == "UPSTREAM_CLUSTER":
			flush()
			f.segments = append(f.segments, segment{kind: segUpstreamCluster})
		case strings.HasPrefix(name, "REQ(") && strings.HasSuffix(name, ")"):
			h := name[len("REQ(") : len(name)-1]
			if !httpguts.ValidHeaderFieldName(h) {
				return format{}, fmt.Errorf("%%%s%% at byte %d of %q: %q is not a valid header name", name, i, s, h)
			}
			flush()
			f.segments = append(f.segments, segment{kind: segRequestHeader, text: http.CanonicalHeaderKey(h)})
		default:
			return format{}, fmt.Errorf("unknown variable %%%s%% at byte %d of %q (variables: %s)", name, i, s, variableNames)
		}
		i += end + 2
	}
	flush()
	return f, nil
}

// eval expands the variables. A value without variables costs nothing.
func (f *format) eval(vars *Vars) string {
	switch {
	case len(f.segments) == 0:
		return ""
	case len(f.segments) == 1 && f.segments[0].kind == segLiteral:
		return f.segments[0].text
	}
	var b strings.Builder
	for _, s := range f.segments {
		switch s.kind {
		case segLiteral:
			b.WriteString(s.text)
		case segRemoteAddr:
			if vars != nil {
				b.WriteString(hostWithoutPort(vars.RemoteAddr))
			}
		case segUpstreamCluster:
			if vars != nil {
				b.WriteString(vars.UpstreamCluster)
			}
		case segRequestHeader:
			if vars != nil && vars.Request != nil {
				if vs := vars.Request[s.text]; len(vs) > 0 {
					b.WriteString(vs[0])
				}
			}
		}
	}
	return b.String()
}

func hostWithoutPort(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr // already without a port, or not an address at all
}

// NewHeaderMutation compiles the header changes of one configuration level
// (virtual host, route or weighted cluster). It returns nil, nil when m
// changes nothing, so that callers can skip the level entirely.
func NewHeaderMutation(m config.HeadersMutation, hostname string) (*HeaderMutation, error) {
	if len(m.RequestHeadersToAdd)+len(m.RequestHeadersToRemove)+len(m.ResponseHeadersToAdd)+len(m.ResponseHeadersToRemove) == 0 {
		return nil, nil
	}
	out := &HeaderMutation{}
	var err error
	if out.requestAdd, err = compileAdds(m.RequestHeadersToAdd, "request_headers_to_add", hostname); err != nil {
		return nil, err
	}
	if out.responseAdd, err = compileAdds(m.ResponseHeadersToAdd, "response_headers_to_add", hostname); err != nil {
		return nil, err
	}
	if out.requestRemove, err = compileRemoves(m.RequestHeadersToRemove, "request_headers_to_remove"); err != nil {
		return nil, err
	}
	if out.responseRemove, err = compileRemoves(m.ResponseHeadersToRemove, "response_headers_to_remove"); err != nil {
		return nil, err
	}
	return out, nil
}

func checkMutableHeader(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("header name is required")
	case strings.HasPrefix(name, ":"):
		return fmt.Errorf("pseudo-header %q cannot be changed", name)
	case strings.EqualFold(name, "host"):
		return fmt.Errorf("host cannot be changed here; use host_rewrite_literal")
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("%q is not a valid header name", name)
	}
	return nil
}

func compileAdds(opts []config.HeaderValueOption, field, hostname string) ([]headerAdd, error) {
	var out []headerAdd
	for i, o := range opts {
		if err := checkMutableHeader(o.Key); err != nil {
			return nil, fmt.Errorf("%s[%d].key: %w", field, i, err)
		}
		if strings.ContainsAny(o.Value, "\r\n\x00") {
			return nil, fmt.Errorf("%s[%d].value: contains CR, LF or NUL, which would split or corrupt the header", field, i)
		}
		f, err := parseFormat(o.Value, hostname)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].value: %w", field, i, err)
		}
		out = append(out, headerAdd{
			key:    http.CanonicalHeaderKey(o.Key),
			value:  f,
			append: o.Append == nil || *o.Append,
		})
	}
	return out, nil
}

func compileRemoves(names []string, field string) ([]string, error) {
	var out []string
	for i, n := range names {
		if err := checkMutableHeader(n); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, http.CanonicalHeaderKey(n))
	}
	return out, nil
}

// ApplyRequest changes request headers h: first the removals, then the
// additions, as Envoy does. An addition with append true adds a value;
// with append false it replaces every existing value. A value that expands
// to the empty string is not added (Envoy's default, keep_empty_value false).
func (m *HeaderMutation) ApplyRequest(h http.Header, vars *Vars) {
	if m == nil {
		return
	}
	apply(h, m.requestRemove, m.requestAdd, vars)
}

// ApplyResponse changes response headers h, with the same rules as
// ApplyRequest. %REQ(name)% still reads the request headers in vars.
func (m *HeaderMutation) ApplyResponse(h http.Header, vars *Vars) {
	if m == nil {
		return
	}
	apply(h, m.responseRemove, m.responseAdd, vars)
}

func apply(h http.Header, remove []string, add []headerAdd, vars *Vars) {
	if h == nil {
		return
	}
	for _, k := range remove {
		delete(h, k)
	}
	for i := range add {
		a := &add[i]
		v := a.value.eval(vars)
		if v == "" {
			continue
		}
		if a.append {
			h[a.key] = append(h[a.key], v)
		} else {
			h[a.key] = []string{v}
		}
	}
}
