package ratelimit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// Entry is one descriptor entry, a key and a value.
type Entry struct {
	Key, Value string
}

// Descriptor is an ordered list of entries, one rate-limit question for the
// service ("how many requests with remote_address=10.0.0.1 and
// path=/api?").
type Descriptor []Entry

// String renders d as the service logs it: (k=v, k=v).
func (d Descriptor) String() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, e := range d {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Key)
		b.WriteByte('=')
		b.WriteString(e.Value)
	}
	b.WriteByte(')')
	return b.String()
}

// Attributes are what actions read from a request.
type Attributes struct {
	// Request is the downstream request; its Header is the header set as
	// the connection manager edited it (X-Forwarded-For, x-request-id).
	Request *http.Request
	// RemoteAddress is the trusted client address (Envoy's downstream
	// remote address after the XFF rules); invalid when unknown.
	RemoteAddress netip.Addr
	// DestinationCluster is the cluster the request is routed to.
	DestinationCluster string
	// SourceCluster is the local service cluster (node.cluster).
	SourceCluster string
}

// RequestMatcher reports whether a request matches; package route
// compiles header_value_match headers into one, with its route matchers.
type RequestMatcher func(*http.Request) bool

// CompileMatcher turns a header_value_match's headers into a matcher.
type CompileMatcher func([]config.HeaderMatcher) (RequestMatcher, error)

type actionKind uint8

const (
	actionRequestHeaders actionKind = iota + 1
	actionRemoteAddress
	actionGenericKey
	actionDestinationCluster
	actionSourceCluster
	actionHeaderValueMatch
)

// action is one compiled rate-limit action.
type action struct {
	kind  actionKind
	key   string
	value string
	// header is the canonical header name for request_headers, or one of
	// ":authority", ":method", ":path".
	header       string
	skipIfAbsent bool
	match        RequestMatcher
	expect       bool
}

// Policy is one compiled rate_limits entry: its actions build one
// descriptor.
type Policy struct {
	actions []action
}

// NewPolicies compiles rate_limits entries (defaults applied and validated
// by package config). compile builds header_value_match matchers; path
// prefixes errors (virtual_hosts[0].rate_limits).
func NewPolicies(rls []config.RateLimit, compile CompileMatcher, path string) ([]*Policy, error) {
	var out []*Policy
	for i := range rls {
		p := &Policy{}
		ip := fmt.Sprintf("%s[%d].actions", path, i)
		if len(rls[i].Actions) == 0 {
			return nil, fmt.Errorf("%s: at least one action is required", ip)
		}
		for j := range rls[i].Actions {
			a, err := newAction(&rls[i].Actions[j], compile)
			if err != nil {
				return nil, fmt.Errorf("%s[%d].%w", ip, j, err)
			}
			p.actions = append(p.actions, a)
		}
		out = append(out, p)
	}
	return out, nil
}

func newAction(c *config.RateLimitAction, compile CompileMatcher) (action, error) {
	var a action
	set := 0
	if h := c.RequestHeaders; h != nil {
		set++
		a = action{kind: actionRequestHeaders, key: h.DescriptorKey, skipIfAbsent: h.SkipIfAbsent}
		switch name := strings.ToLower(h.HeaderName); name {
		case ":authority", "host":
			a.header = ":authority"
		case ":method", ":path":
			a.header = name
		case "":
			return a, fmt.Errorf("request_headers.header_name: required")
		default:
			if strings.HasPrefix(name, ":") {
				return a, fmt.Errorf("request_headers.header_name: unknown pseudo-header %q", h.HeaderName)
			}
			a.header = http.CanonicalHeaderKey(name)
		}
		if a.key == "" {
			return a, fmt.Errorf("request_headers.descriptor_key: required")
		}
	}
	if c.RemoteAddress != nil {
		set++
		a = action{kind: actionRemoteAddress, key: "remote_address"}
	}
	if g := c.GenericKey; g != nil {
		set++
		a = action{kind: actionGenericKey, key: g.DescriptorKey, value: g.DescriptorValue}
		if a.key == "" {
			a.key = "generic_key"
		}
	}
	if c.DestinationCluster != nil {
		set++
		a = action{kind: actionDestinationCluster, key: "destination_cluster"}
	}
	if c.SourceCluster != nil {
		set++
		a = action{kind: actionSourceCluster, key: "source_cluster"}
	}
	if h := c.HeaderValueMatch; h != nil {
		set++
		a = action{kind: actionHeaderValueMatch, key: h.DescriptorKey, value: h.DescriptorValue, expect: h.ExpectMatch == nil || *h.ExpectMatch}
		if a.key == "" {
			a.key = "header_match"
		}
		m, err := compile(h.Headers)
		if err != nil {
			return a, fmt.Errorf("header_value_match.%w", err)
		}
		a.match = m
	}
	if set != 1 {
		return a, fmt.Errorf("exactly one action kind is required, found %d", set)
	}
	return a, nil
}

// Descriptor builds the policy's descriptor for a request, as Envoy's
// RateLimitPolicyEntry does: each action adds its entry in order, a
// request_headers action with skip_if_absent adds nothing for a missing
// header, and any other action that cannot produce its entry drops the
// whole descriptor (ok false). A policy whose actions all skipped produces
// no descriptor either.
func (p *Policy) Descriptor(a *Attributes) (Descriptor, bool) {
	d := make(Descriptor, 0, len(p.actions))
	for i := range p.actions {
		e, ok, skip := p.actions[i].entry(a)
		switch {
		case skip:
		case !ok:
			return nil, false
		default:
			d = append(d, e)
		}
	}
	return d, len(d) > 0
}

func (ac *action) entry(a *Attributes) (e Entry, ok, skip bool) {
	switch ac.kind {
	case actionRequestHeaders:
		v, found := headerValue(a.Request, ac.header)
		if !found {
			return Entry{}, false, ac.skipIfAbsent
		}
		return Entry{ac.key, v}, true, false
	case actionRemoteAddress:
		if !a.RemoteAddress.IsValid() {
			return Entry{}, false, false
		}
		return Entry{ac.key, a.RemoteAddress.Unmap().String()}, true, false
	case actionGenericKey:
		return Entry{ac.key, ac.value}, true, false
	case actionDestinationCluster:
		return Entry{ac.key, a.DestinationCluster}, a.DestinationCluster != "", false
	case actionSourceCluster:
		return Entry{ac.key, a.SourceCluster}, true, false
	case actionHeaderValueMatch:
		if a.Request == nil || ac.match(a.Request) != ac.expect {
			return Entry{}, false, false
		}
		return Entry{ac.key, ac.value}, true, false
	}
	return Entry{}, false, false
}

// headerValue returns the first value of a request header, or a
// pseudo-header's value. A header present with an empty value is present,
// as in Envoy.
func headerValue(r *http.Request, name string) (string, bool) {
	if r == nil {
		return "", false
	}
	switch name {
	case ":authority":
		return r.Host, true
	case ":method":
		return r.Method, true
	case ":path":
		if r.RequestURI == "" && r.URL != nil {
			return r.URL.RequestURI(), true
		}
		return r.RequestURI, true
	}
	vs := r.Header[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// Descriptors builds the descriptors of every policy that produces one, in
// order (the route's policies, then the virtual host's).
func Descriptors(policies []*Policy, a *Attributes) []Descriptor {
	var out []Descriptor
	for _, p := range policies {
		if d, ok := p.Descriptor(a); ok {
			out = append(out, d)
		}
	}
	return out
}
