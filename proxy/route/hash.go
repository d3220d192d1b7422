package route

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"golang.org/x/net/http/httpguts"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// HashPolicy is a route's compiled hash_policy: it computes the request
// hash that ring_hash and maglev clusters balance on, as Envoy's
// Http::HashPolicyImpl does, with the same hash values (xxHash64), so that
// a key lands where an Envoy proxy with the same hosts would send it.
type HashPolicy struct {
	methods []hashMethod
}

type hashKind uint8

const (
	hashHeader hashKind = iota + 1
	hashAuthority
	hashPath
	hashHTTPMethod
	hashScheme
	hashCookie
	hashSourceIP
	hashQueryParameter
)

// hashMethod is one hash_policy entry.
type hashMethod struct {
	kind     hashKind
	terminal bool
	// name is the canonical header name, the cookie name or the query
	// parameter name.
	name string
	// generate, ttl and path describe the cookie to generate when the
	// request has none (a cookie entry with a ttl).
	generate bool
	ttl      time.Duration
	path     string
}

// HashInput is what a hash policy reads besides the request.
type HashInput struct {
	// ClientAddress is the downstream remote address Envoy's source_ip
	// hashes: the peer at an edge proxy, or the client X-Forwarded-For
	// designates (headers.Forwarded.ClientAddress). Invalid: no source_ip
	// hash.
	ClientAddress netip.Addr
}

// compileHashPolicy compiles a route's hash_policy; nil when it is empty.
func compileHashPolicy(list []config.HashPolicy, path string) (*HashPolicy, error) {
	if len(list) == 0 {
		return nil, nil
	}
	p := &HashPolicy{methods: make([]hashMethod, 0, len(list))}
	for i := range list {
		hp := &list[i]
		ip := fmt.Sprintf("%s.hash_policy[%d]", path, i)
		m := hashMethod{terminal: hp.Terminal}
		kinds := 0
		if h := hp.Header; h != nil {
			kinds++
			switch strings.ToLower(h.HeaderName) {
			case ":authority", "host":
				m.kind = hashAuthority
			case ":path":
				m.kind = hashPath
			case ":method":
				m.kind = hashHTTPMethod
			case ":scheme":
				m.kind = hashScheme
			default:
				if !httpguts.ValidHeaderFieldName(h.HeaderName) {
					return nil, fmt.Errorf("%s.header.header_name: %q is not a valid header name", ip, h.HeaderName)
				}
				m.kind, m.name = hashHeader, http.CanonicalHeaderKey(h.HeaderName)
			}
		}
		if c := hp.Cookie; c != nil {
			kinds++
			if c.Name == "" {
				return nil, fmt.Errorf("%s.cookie.name: required", ip)
			}
			m.kind, m.name, m.path = hashCookie, c.Name, c.Path
			if c.TTL != nil {
				if m.ttl = c.TTL.D(); m.ttl < 0 {
					return nil, fmt.Errorf("%s.cookie.ttl: %v is negative", ip, m.ttl)
				}
				m.generate = true
			}
		}
		if c := hp.ConnectionProperties; c != nil {
			kinds++
			if !c.SourceIP {
				return nil, fmt.Errorf("%s.connection_properties.source_ip: must be true", ip)
			}
			m.kind = hashSourceIP
		}
		if q := hp.QueryParameter; q != nil {
			kinds++
			if q.Name == "" {
				return nil, fmt.Errorf("%s.query_parameter.name: required", ip)
			}
			m.kind, m.name = hashQueryParameter, q.Name
		}
		if kinds != 1 {
			return nil, fmt.Errorf("%s: exactly one of header, cookie, connection_properties and query_parameter is required, found %d", ip, kinds)
		}
		p.methods = append(p.methods, m)
	}
	return p, nil
}

// Hash computes the request hash of r. ok is false when no entry produced
// one (the balancer then draws a random value). setCookies holds the
// Set-Cookie values of cookies generated for a cookie entry with a ttl,
// which the proxy adds to the upstream response; it is nil unless a cookie
// was generated. Hash allocates nothing unless it generates a cookie.
//
// Entries combine as in Envoy: each hash produced is XORed into the running
// hash rotated left by one bit (so that two equal entries do not cancel
// out), and a terminal entry stops the evaluation once there is a hash.
func (p *HashPolicy) Hash(r *http.Request, in HashInput) (hash uint64, ok bool, setCookies []string) {
	for i := range p.methods {
		m := &p.methods[i]
		h, produced := uint64(0), false
		switch m.kind {
		case hashHeader:
			h, produced = hashValues(r.Header[m.name])
		case hashAuthority:
			h, produced = hashString(r.Host)
		case hashPath:
			path := r.RequestURI
			if path == "" && r.URL != nil {
				path = r.URL.RequestURI()
			}
			h, produced = hashString(path)
		case hashHTTPMethod:
			h, produced = hashString(r.Method)
		case hashScheme:
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			h, produced = hashString(scheme)
		case hashCookie:
			if v, found := CookieValue(r.Header["Cookie"], m.name); found && v != "" {
				h, produced = xxhash.Sum64String(v), true
			} else if m.generate {
				v, set := m.newCookie(r)
				setCookies = append(setCookies, set)
				h, produced = xxhash.Sum64String(v), true
			}
		case hashSourceIP:
			if in.ClientAddress.IsValid() {
				var buf [64]byte
				h, produced = xxhash.Sum64(in.ClientAddress.AppendTo(buf[:0])), true
			}
		case hashQueryParameter:
			if r.URL != nil {
				if v, found := QueryParameterValue(r.URL.RawQuery, m.name); found {
					h, produced = xxhash.Sum64String(v), true
				}
			}
		}
		if produced {
			old := uint64(0)
			if ok {
				old = hash<<1 | hash>>63
			}
			hash, ok = old^h, true
		}
		if m.terminal && ok {
			break
		}
	}
	return hash, ok, setCookies
}

func hashString(s string) (uint64, bool) { return xxhash.Sum64String(s), true }

// hashValues hashes a header's values as Envoy does: sorted, so that their
// order does not matter, each hashed with the previous hash as the seed.
// A header on one line, the common case, is xxHash64 of its value.
func hashValues(vs []string) (uint64, bool) {
	switch len(vs) {
	case 0:
		return 0, false
	case 1:
		return xxhash.Sum64String(vs[0]), true
	}
	var buf [8]string
	sorted := buf[:0]
	if len(vs) > len(buf) {
		sorted = make([]string, 0, len(vs))
	}
	for _, v := range vs {
		// Insertion sort: header lines are few.
		j := len(sorted)
		sorted = append(sorted, v)
		for ; j > 0 && sorted[j-1] > v; j-- {
			sorted[j] = sorted[j-1]
		}
		sorted[j] = v
	}
	var seed uint64
	var d xxhash.Digest
	for _, v := range sorted {
		d.ResetWithSeed(seed)
		_, _ = d.WriteString(v)
		seed = d.Sum64()
	}
	return seed, true
}

// newCookie generates the cookie of a cookie entry with a ttl, as Envoy's
// router does: the value is the hex xxHash64 of the connection's remote
// and local addresses, so that requests racing on one connection get the
// same cookie. It returns the value and the Set-Cookie header value.
func (m *hashMethod) newCookie(r *http.Request) (value, setCookie string) {
	local := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	value = fmt.Sprintf("%016x", xxhash.Sum64String(r.RemoteAddr+local))
	var b strings.Builder
	b.WriteString(m.name)
	b.WriteString(`="`)
	b.WriteString(value)
	b.WriteByte('"')
	if secs := int64(m.ttl / time.Second); secs != 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(secs, 10))
	}
	if m.path != "" {
		b.WriteString("; Path=")
		b.WriteString(m.path)
	}
	b.WriteString("; HttpOnly")
	return value, b.String()
}

// CookieValue returns the value of the first cookie named name in the
// Cookie header lines, without surrounding double quotes, as Envoy's
// Http::Utility::parseCookieValue reads it: each line is split at ';',
// leading spaces before a name are skipped, a pair without '=' is ignored,
// and names compare exactly. It allocates nothing.
func CookieValue(lines []string, name string) (value string, found bool) {
	for _, line := range lines {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			k, v, hasEq := strings.Cut(strings.TrimLeft(pair, " "), "=")
			if !hasEq || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// QueryParameterValue returns the value of the first parameter named name
// in a raw query string, as sent (not URL-decoded), as Envoy's
// QueryParamsMulti::parseQueryString reads it: pairs are separated by '&',
// and a name without '=' has the empty value. It allocates nothing.
func QueryParameterValue(rawQuery, name string) (value string, found bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}
