package headers

import (
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/requestid"
)

func TestRemoveHopByHop(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "standard hop-by-hop headers",
			in: http.Header{
				"Connection": {"keep-alive"}, "Proxy-Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"},
				"Proxy-Authenticate": {"Basic"}, "Proxy-Authorization": {"Basic eA=="}, "Te": {"gzip"},
				"Trailer": {"X-T"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"websocket"}, "X-Keep": {"1"},
			},
			want: http.Header{"X-Keep": {"1"}},
		},
		{
			name: "headers named by Connection, any case and spacing",
			in:   http.Header{"Connection": {" x-foo ,X-BAR", "x-baz"}, "X-Foo": {"1"}, "X-Bar": {"2"}, "X-Baz": {"3"}, "X-Keep": {"4"}},
			want: http.Header{"X-Keep": {"4"}},
		},
		{
			name: "TE trailers survives alone",
			in:   http.Header{"Te": {"gzip, Trailers", "deflate"}},
			want: http.Header{"Te": {"trailers"}},
		},
		{
			name: "TE trailers among others",
			in:   http.Header{"Te": {"deflate", " trailers "}},
			want: http.Header{"Te": {"trailers"}},
		},
		{
			name: "Connection may name TE, which then goes entirely",
			in:   http.Header{"Connection": {"TE"}, "Te": {"trailers"}},
			want: http.Header{},
		},
		{
			name: "invalid tokens in Connection are ignored",
			in:   http.Header{"Connection": {"x(y), , \"q\""}, "X(y)": {"1"}, "X-Keep": {"1"}},
			want: http.Header{"X(y)": {"1"}, "X-Keep": {"1"}},
		},
		{
			name: "nothing to remove",
			in:   http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"a"}},
			want: http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"a"}},
		},
		{
			name: "h2c upgrade: HTTP2-Settings goes even when Connection does not name it",
			in:   http.Header{"Connection": {"Upgrade"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQCAAAAAAIAAAAA"}, "X-Keep": {"1"}},
			want: http.Header{"X-Keep": {"1"}},
		},
		{name: "empty", in: http.Header{}, want: http.Header{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			RemoveHopByHop(tc.in)
			if !reflect.DeepEqual(tc.in, tc.want) {
				t.Errorf("got %v, want %v", tc.in, tc.want)
			}
		})
	}
}

func TestIsUpgrade(t *testing.T) {
	for _, tc := range []struct {
		name  string
		h     http.Header
		proto string
		ok    bool
	}{
		{"websocket", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, "websocket", true},
		{"token in a list, any case", http.Header{"Connection": {"keep-alive, UPGRADE"}, "Upgrade": {"h2c"}}, "h2c", true},
		{"second Connection field", http.Header{"Connection": {"keep-alive", "upgrade"}, "Upgrade": {"websocket"}}, "websocket", true},
		{"Upgrade without Connection: upgrade", http.Header{"Upgrade": {"websocket"}}, "", false},
		{"Connection: upgrade without Upgrade", http.Header{"Connection": {"upgrade"}}, "", false},
		{"token is a substring only", http.Header{"Connection": {"upgraded"}, "Upgrade": {"websocket"}}, "", false},
		{"empty", http.Header{}, "", false},
		{"empty Upgrade value", http.Header{"Connection": {"upgrade"}, "Upgrade": {" "}}, "", false},
		// Several fields become one list, which no configured type matches.
		{"two Upgrade fields", http.Header{"Connection": {"upgrade"}, "Upgrade": {"websocket", "h2c"}}, "websocket, h2c", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proto, ok := IsUpgrade(tc.h)
			if proto != tc.proto || ok != tc.ok {
				t.Errorf("IsUpgrade = %q, %v; want %q, %v", proto, ok, tc.proto, tc.ok)
			}
		})
	}
}

func TestSetAndStripUpgrade(t *testing.T) {
	h := http.Header{"X-Keep": {"1"}}
	SetUpgrade(h, "websocket")
	want := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "X-Keep": {"1"}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("SetUpgrade: got %v, want %v", h, want)
	}
	StripUpgrade(h)
	if want := (http.Header{"X-Keep": {"1"}}); !reflect.DeepEqual(h, want) {
		t.Fatalf("StripUpgrade: got %v, want %v", h, want)
	}
}

func TestApplyForwardedFor(t *testing.T) {
	addr := func(s string) netip.Addr {
		if s == "" {
			return netip.Addr{}
		}
		return netip.MustParseAddr(s)
	}
	for _, tc := range []struct {
		name       string
		incoming   string
		peer       string
		useRemote  bool
		trusted    int
		wantXFF    string
		wantClient string
		internal   bool
	}{
		{"edge, no XFF, external peer", "", "203.0.113.7", true, 0, "203.0.113.7", "203.0.113.7", false},
		{"edge, no XFF, loopback peer", "", "127.0.0.1", true, 0, "127.0.0.1", "127.0.0.1", true},
		{"edge appends the peer", "198.51.100.1", "10.0.0.1", true, 0, "198.51.100.1, 10.0.0.1", "10.0.0.1", true},
		{"edge with one trusted hop picks the last entry", "198.51.100.1", "10.0.0.1", true, 1, "198.51.100.1, 10.0.0.1", "198.51.100.1", false},
		{"edge with two trusted hops", "198.51.100.1, 10.0.0.2", "10.0.0.1", true, 2, "198.51.100.1, 10.0.0.2, 10.0.0.1", "198.51.100.1", false},
		{"edge, trusted hops beyond the list keep the peer", "10.0.0.2", "203.0.113.7", true, 3, "10.0.0.2, 203.0.113.7", "203.0.113.7", false},
		{"edge, garbage entry keeps the peer", "not-an-ip", "10.0.0.1", true, 1, "not-an-ip, 10.0.0.1", "10.0.0.1", true},
		{"edge unmaps an IPv4-mapped peer", "", "::ffff:192.0.2.1", true, 0, "192.0.2.1", "192.0.2.1", false},
		{"edge, IPv6 peer", "", "2001:db8::1", true, 0, "2001:db8::1", "2001:db8::1", false},
		{"internal hop passes XFF unchanged", "198.51.100.1, 10.0.0.2", "10.0.0.1", false, 0, "198.51.100.1, 10.0.0.2", "10.0.0.2", true},
		{"internal hop with one trusted hop", "198.51.100.1, 10.0.0.2", "10.0.0.1", false, 1, "198.51.100.1, 10.0.0.2", "198.51.100.1", false},
		{"internal hop, no XFF: no client", "", "10.0.0.1", false, 0, "", "", false},
		{"internal hop, spaces and mapped entry", " ::ffff:10.9.9.9 ", "10.0.0.1", false, 0, " ::ffff:10.9.9.9 ", "10.9.9.9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ApplyForwardedFor(tc.incoming, addr(tc.peer), tc.useRemote, tc.trusted)
			if f.XFF != tc.wantXFF || f.ClientAddress != addr(tc.wantClient) || f.Internal != tc.internal {
				t.Errorf("got XFF %q client %v internal %v; want %q %v %v", f.XFF, f.ClientAddress, f.Internal, tc.wantXFF, tc.wantClient, tc.internal)
			}
		})
	}
}

func TestRemoveEnvoyHeaders(t *testing.T) {
	h := http.Header{
		"X-Envoy-Max-Retries": {"5"}, "X-Envoy-Retry-On": {"5xx"}, "X-Envoy-": {"edge"},
		"x-envoy-lower": {"non-canonical key"}, "X-Envoyish": {"keep"}, "X-Request-Id": {"keep"},
	}
	RemoveEnvoyHeaders(h)
	want := http.Header{"X-Envoy-": {"edge"}, "X-Envoyish": {"keep"}, "X-Request-Id": {"keep"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %v, want %v", h, want)
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want int
	}{
		{nil, 0},
		{http.Header{}, 0},
		{http.Header{"A": {"1"}}, 1},
		{http.Header{"A": {"1", "2"}, "B": {"3"}}, 3},
		{http.Header{"A": {}}, 0},
	} {
		if got := Count(tc.h); got != tc.want {
			t.Errorf("Count(%v) = %d, want %d", tc.h, got, tc.want)
		}
	}
}

// hopByHopNames lists the names that must never survive RemoveHopByHop
// (Te survives only as exactly "trailers").
var hopByHopNames = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings"}

func FuzzRemoveHopByHop(f *testing.F) {
	f.Add("x-foo, keep-alive", "x-foo", "trailers", "1")
	f.Add("close", "Keep-Alive", "gzip, trailers", "2")
	f.Add("TE", "Te", "trailers", "")
	f.Add(" , ,x(y)", "X(y)", "", "v")
	f.Add("upgrade", "Upgrade", "deflate", "websocket")
	f.Fuzz(func(t *testing.T, conn, name, te, value string) {
		h := http.Header{http.CanonicalHeaderKey(name): {value}}
		h["Connection"] = []string{conn}
		h["Te"] = []string{te}
		h["Upgrade"] = []string{value}
		h["Keep-Alive"] = []string{value}
		h["Http2-Settings"] = []string{value}
		h["X-End-To-End"] = []string{"kept"}
		named := map[string]bool{}
		for n := range strings.SplitSeq(conn, ",") {
			if n = strings.TrimSpace(n); n != "" && validToken(n) {
				named[http.CanonicalHeaderKey(n)] = true
			}
		}
		RemoveHopByHop(h)
		for _, n := range hopByHopNames {
			if _, ok := h[n]; ok {
				t.Fatalf("hop-by-hop %s survived: %v", n, h)
			}
		}
		for n := range named {
			if _, ok := h[n]; ok {
				t.Fatalf("%s, named by Connection %q, survived: %v", n, conn, h)
			}
		}
		if te, ok := h["Te"]; ok && (len(te) != 1 || te[0] != "trailers") {
			t.Fatalf("TE survived as %q, want only \"trailers\"", te)
		}
		if _, ok := h["Te"]; !ok && containsToken(te, "trailers") && !named["Te"] {
			t.Fatalf("TE: %q contained trailers but was dropped", te)
		}
		if !named["X-End-To-End"] && h.Get("X-End-To-End") != "kept" {
			t.Fatalf("end-to-end header dropped: %v", h)
		}
	})
}

func FuzzApplyForwardedFor(f *testing.F) {
	f.Add("203.0.113.7, 10.0.0.1", []byte{127, 0, 0, 1}, true, 1)
	f.Add("", []byte{10, 0, 0, 1}, false, 0)
	f.Add(",,,", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, true, 5)
	f.Add("::ffff:1.2.3.4", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4}, true, -1)
	f.Add("garbage, 1.2.3.4 ", []byte{}, false, 2)
	f.Fuzz(func(t *testing.T, incoming string, peerBytes []byte, useRemote bool, trusted int) {
		peer, ok := netip.AddrFromSlice(peerBytes)
		if !ok {
			peer = netip.Addr{}
		}
		fw := ApplyForwardedFor(incoming, peer, useRemote, trusted)
		if useRemote && peer.IsValid() {
			if want := peer.Unmap().String(); !strings.HasSuffix(fw.XFF, want) {
				t.Fatalf("XFF %q does not end with the peer %s", fw.XFF, want)
			}
			if incoming != "" && !strings.HasPrefix(fw.XFF, incoming+", ") {
				t.Fatalf("XFF %q does not keep the incoming %q in front", fw.XFF, incoming)
			}
		}
		if !useRemote && fw.XFF != incoming {
			t.Fatalf("internal hop changed XFF from %q to %q", incoming, fw.XFF)
		}
		if fw.Internal != requestid.IsInternalAddress(fw.ClientAddress) {
			t.Fatalf("Internal %v disagrees with requestid.IsInternalAddress(%v)", fw.Internal, fw.ClientAddress)
		}
		if fw.ClientAddress.Is4In6() {
			t.Fatalf("client address %v is not unmapped", fw.ClientAddress)
		}
	})
}

// TestHasHopByHop: the fast path's list is hopByHop, name for name, so
// that RemoveHopByHop never returns early from a header set it would edit.
func TestHasHopByHop(t *testing.T) {
	for _, name := range hopByHop {
		if !hasHopByHop(http.Header{"Date": {"x"}, name: {"x"}}) {
			t.Errorf("hasHopByHop misses %s", name)
		}
	}
	if hasHopByHop(http.Header{"Content-Type": {"text/plain"}, "Connectio": {"x"}, "Tee": {"x"}}) {
		t.Error("hasHopByHop reports an end-to-end header set")
	}
}
