package config

import (
	"strings"

	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// HashPolicy is one of Envoy's route.hash_policy entries: where the request
// hash of a ring_hash or maglev cluster comes from. Exactly one of Header,
// Cookie, ConnectionProperties and QueryParameter is required.
//
// A route's entries are evaluated in order and combined as Envoy does: each
// hash produced is XORed into the running hash rotated left by one bit, and
// an entry with Terminal set stops the evaluation when a hash has been
// produced so far. A request for which no entry produces a hash is balanced
// by a random value. Clusters of other lb_policy values ignore the hash.
type HashPolicy struct {
	// Header hashes the value of a request header.
	Header *HashPolicyHeader `yaml:"header"`
	// Cookie hashes the value of a request cookie, and may generate it.
	Cookie *HashPolicyCookie `yaml:"cookie"`
	// ConnectionProperties hashes the client's IP address.
	ConnectionProperties *HashPolicyConnectionProperties `yaml:"connection_properties"`
	// QueryParameter hashes the value of a query parameter.
	QueryParameter *HashPolicyQueryParameter `yaml:"query_parameter"`
	// Terminal stops the evaluation of later entries when this one, or an
	// earlier one, produced a hash. Default false.
	Terminal bool `yaml:"terminal"`
}

// HashPolicyHeader is Envoy's hash_policy.header.
type HashPolicyHeader struct {
	// HeaderName is the request header whose value is hashed,
	// case-insensitive; the pseudo-headers :authority, :path, :method and
	// :scheme are accepted too. A header repeated on several lines is hashed
	// over all its values, sorted, so that their order does not matter. A
	// request without the header produces no hash. Required.
	HeaderName string `yaml:"header_name"`
}

// HashPolicyCookie is Envoy's hash_policy.cookie.
type HashPolicyCookie struct {
	// Name of the cookie whose value is hashed. Required.
	Name string `yaml:"name"`
	// TTL, when set, makes the proxy generate the cookie when the request
	// has none: its value is derived from the client connection, the
	// request is hashed on it, and the upstream response carries it in a
	// Set-Cookie with Max-Age set to the TTL (0s: a session cookie) and
	// HttpOnly. Default: unset, no cookie is generated.
	TTL *Duration `yaml:"ttl"`
	// Path of the generated cookie. Default: none.
	Path string `yaml:"path"`
}

// HashPolicyConnectionProperties is Envoy's hash_policy.connection_properties.
type HashPolicyConnectionProperties struct {
	// SourceIP hashes the client's IP address: the peer's at an edge proxy,
	// else the one X-Forwarded-For and xff_num_trusted_hops designate (the
	// address Envoy calls the downstream remote address). Must be true.
	SourceIP bool `yaml:"source_ip"`
}

// HashPolicyQueryParameter is Envoy's hash_policy.query_parameter.
type HashPolicyQueryParameter struct {
	// Name of the query parameter whose value is hashed, case-sensitive.
	// The first occurrence counts; its value is hashed as sent, not
	// URL-decoded; "?name" alone hashes an empty value. Required.
	Name string `yaml:"name"`
}

// RingHashLBConfig is Envoy's cluster.ring_hash_lb_config; the type, its
// defaults and its checks live with the policy in proxy/lbpolicy.
type RingHashLBConfig = lbpolicy.RingHashConfig

// MaglevLBConfig is Envoy's cluster.maglev_lb_config; the type, its
// defaults and its checks live with the policy in proxy/lbpolicy.
type MaglevLBConfig = lbpolicy.MaglevConfig

// hashPseudoHeaders are the HTTP/2 pseudo-headers a header hash policy may
// name.
var hashPseudoHeaders = []string{":authority", ":path", ":method", ":scheme"}

func (v *validator) routeHashPolicy(ap string, a *RouteAction) {
	for i := range a.HashPolicy {
		h := &a.HashPolicy[i]
		hp := indexPath(fieldPath(ap, "hash_policy"), i)
		kinds := setNames(map[string]bool{
			"header": h.Header != nil, "cookie": h.Cookie != nil,
			"connection_properties": h.ConnectionProperties != nil, "query_parameter": h.QueryParameter != nil,
		})
		if len(kinds) != 1 {
			v.errorf(hp, "exactly one of header, cookie, connection_properties or query_parameter is required%s", gotKinds(kinds))
		}
		if h.Header != nil {
			p := fieldPath(hp, "header.header_name")
			if name := h.Header.HeaderName; strings.HasPrefix(name, ":") {
				if !containsFold(hashPseudoHeaders, name) {
					v.errorf(p, "unknown pseudo-header %q (allowed: %s)", name, strings.Join(hashPseudoHeaders, ", "))
				}
			} else {
				v.headerName(p, name)
			}
		}
		if c := h.Cookie; c != nil {
			// A cookie name is an RFC 6265 token, the same grammar as a
			// header name.
			v.headerName(fieldPath(hp, "cookie.name"), c.Name)
			if strings.ContainsAny(c.Path, ";\r\n\x00") {
				v.errorf(fieldPath(hp, "cookie.path"), "%q: a cookie path must not contain ';' or control characters", c.Path)
			}
		}
		if c := h.ConnectionProperties; c != nil && !c.SourceIP {
			v.errorf(fieldPath(hp, "connection_properties.source_ip"), "must be true: the source IP is the only connection property that can be hashed")
		}
		if q := h.QueryParameter; q != nil && q.Name == "" {
			v.errorf(fieldPath(hp, "query_parameter.name"), "required")
		}
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
