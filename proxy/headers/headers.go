// Package headers implements the header rules every hop applies: removal of
// hop-by-hop headers, X-Forwarded-* handling with trusted hops, and Envoy's
// internal/external request distinction.
package headers

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/requestid"
)

// hopByHop are the headers RFC 9110 §7.6.1 and RFC 7230 define as
// connection-specific. They describe one connection and must never be
// forwarded. Upgrade is put back by the connection manager for an upgrade
// the route allows (IsUpgrade).
var hopByHop = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard, sent by old clients
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer", // not "Trailers": the request/response field that announces them
	"Transfer-Encoding",
	"Upgrade",
	// Only meaningful with "Upgrade: h2c" (RFC 7540 §3.2.1), which is never
	// forwarded; removed even when Connection does not name it, as the
	// RFC requires it to.
	"Http2-Settings",
}

// RemoveHopByHop deletes the hop-by-hop headers from h, including every
// header that Connection names. It keeps "TE: trailers", which gRPC requires
// end to end and which is safe to forward (RFC 9110 §10.1.4).
func RemoveHopByHop(h http.Header) {
	if len(h) <= len(hopByHop) && !hasHopByHop(h) {
		// The common case (a keep-alive request or response with a few
		// end-to-end headers): a look at each key is cheaper than a
		// delete, which hashes, for each hop-by-hop name.
		return
	}
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto(name); name != "" {
				delete(h, name)
			}
		}
	}
	teTrailers := false
	for _, v := range h["Te"] {
		if containsToken(v, "trailers") {
			teTrailers = true
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
	if teTrailers {
		h["Te"] = []string{"trailers"}
	}
}

// hasHopByHop reports whether h has any of the hopByHop headers (then,
// and only then, RemoveHopByHop has something to remove: the names a
// Connection header lists count only when there is one).
func hasHopByHop(h http.Header) bool {
	for k := range h {
		switch k {
		case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
			"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings":
			return true
		}
	}
	return false
}

// textproto trims and canonicalises a header name taken from a Connection
// list, returning "" for names that are not valid tokens.
func textproto(name string) string {
	name = strings.TrimSpace(name)
	if name == "" || !validToken(name) {
		return ""
	}
	return http.CanonicalHeaderKey(name)
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// containsToken reports whether the comma-separated list v contains token,
// ASCII case-insensitively.
func containsToken(v, token string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// IsUpgrade reports whether the request asks to switch protocols: an
// Upgrade header and the "upgrade" token in Connection (RFC 9110 §7.8). It
// returns the Upgrade value, which the connection manager compares with
// the configured upgrade types. Several Upgrade fields are joined into one
// list, which matches no single type, so an ambiguous request is never
// upgraded.
func IsUpgrade(h http.Header) (string, bool) {
	ups := h["Upgrade"]
	if len(ups) == 0 {
		return "", false
	}
	for _, v := range h["Connection"] {
		if containsToken(v, "upgrade") {
			up := strings.TrimSpace(strings.Join(ups, ", "))
			return up, up != ""
		}
	}
	return "", false
}

// SetUpgrade puts back, on a header set RemoveHopByHop cleaned, the two
// headers that ask the upstream to switch to protocol, and nothing else:
// "Connection: Upgrade" and "Upgrade: <protocol>".
func SetUpgrade(h http.Header, protocol string) {
	h["Connection"] = connectionUpgrade
	h["Upgrade"] = []string{protocol}
}

// StripUpgrade removes what SetUpgrade added, so that the request goes
// upstream as a plain HTTP/1.1 request.
func StripUpgrade(h http.Header) {
	delete(h, "Connection")
	delete(h, "Upgrade")
}

// connectionUpgrade is shared by every upgrade request: nothing edits a
// header value in place.
var connectionUpgrade = []string{"Upgrade"}

// Forwarded is the result of applying X-Forwarded-For rules to a request.
type Forwarded struct {
	// ClientAddress is the address Envoy would call the downstream
	// "remote address": the peer itself at an edge, otherwise the XFF entry
	// chosen by xff_num_trusted_hops. Invalid when none can be determined.
	ClientAddress netip.Addr
	// Internal reports whether ClientAddress is internal.
	Internal bool
	// XFF is the X-Forwarded-For value to send upstream.
	XFF string
}

// ApplyForwardedFor computes the client address and the outgoing
// X-Forwarded-For value, following Envoy's rules:
//
//   - use_remote_address true (an edge proxy): the peer address is appended
//     to X-Forwarded-For. With numTrustedHops n > 0 the client is the entry n
//     places from the right of the incoming list (those hops are trusted
//     proxies in front of us); otherwise the client is the peer.
//   - use_remote_address false (an internal hop): X-Forwarded-For passes
//     unchanged and the client is the entry numTrustedHops places from its
//     right end (the last one when n is 0).
func ApplyForwardedFor(incoming string, peer netip.Addr, useRemoteAddress bool, numTrustedHops int) Forwarded {
	var f Forwarded
	if useRemoteAddress {
		f.ClientAddress = peer.Unmap()
		if numTrustedHops > 0 {
			if a, ok := xffEntryFromRight(incoming, numTrustedHops-1); ok {
				f.ClientAddress = a
			}
		}
		peerStr := peer.Unmap().String()
		if incoming == "" {
			f.XFF = peerStr
		} else {
			f.XFF = incoming + ", " + peerStr
		}
	} else {
		f.XFF = incoming
		if a, ok := xffEntryFromRight(incoming, numTrustedHops); ok {
			f.ClientAddress = a
		}
	}
	f.Internal = requestid.IsInternalAddress(f.ClientAddress)
	return f
}

// xffEntryFromRight returns the address n entries from the right of an
// X-Forwarded-For list (n = 0 is the last entry).
func xffEntryFromRight(xff string, n int) (netip.Addr, bool) {
	for n >= 0 {
		i := strings.LastIndexByte(xff, ',')
		entry := strings.TrimSpace(xff[i+1:])
		if n == 0 {
			a, err := netip.ParseAddr(entry)
			return a.Unmap(), err == nil
		}
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
		n--
	}
	return netip.Addr{}, false
}

// RemoveEnvoyHeaders deletes every x-envoy-* request header. Envoy strips
// them from external requests at the edge so that clients cannot steer
// retries, timeouts or tracing.
func RemoveEnvoyHeaders(h http.Header) {
	for k := range h {
		if len(k) > 8 && strings.EqualFold(k[:8], "X-Envoy-") {
			delete(h, k)
		}
	}
}

// Count returns the number of header fields (name/value pairs) in h, the
// quantity that max_request_headers_count bounds.
func Count(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}
