package smuggling

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http2/hpack"
)

// kind is what a probe asks of the proxy, beyond the invariants that
// every probe checks.
type kind int

const (
	// serve: a valid request, answered 200 by the origin, which sees it once.
	serve kind = iota
	// reject: the proxy answers itself (statuses, or any 4xx when empty)
	// and closes the connection; the origin sees nothing.
	reject
	// badBody: a request whose head is valid and whose body is malformed.
	// The head may reach the origin before the body fails; the client gets
	// a 4xx (or, on HTTP/2, a reset) and never the origin's 200.
	badBody
	// safe: the proxy may serve or refuse; only the invariants apply.
	safe
)

func (k kind) String() string {
	return [...]string{"serve", "reject", "bad body", "safe"}[k]
}

// env is what a probe's request is built from: its ID (carried in the
// query as p=ID, or in X-Probe where there is no path) and the address of
// the canary, which no route points at.
type env struct {
	id, canary string
}

// probe is one row of the suite. Exactly one of h1 and h2 is set.
type probe struct {
	name string
	kind kind
	// statuses are the answers the proxy may give a reject or badBody
	// probe (empty: any 4xx).
	statuses []int
	// keepOpen allows a reject answered without closing (a deny route).
	keepOpen bool
	// h1 returns the raw bytes of an HTTP/1 exchange, written in steps
	// with a pause between them (a body after Expect, bytes after an
	// upgrade).
	h1 func(e env) [][]byte
	// responses is how many final responses the client may read on its
	// connection (default 1); one more is a desync.
	responses int
	// h2 builds an HTTP/2 request sent as raw frames.
	h2 func(e env) h2req
	// check adds invariants on what the origin received for this probe.
	check func(e env, reqs []originReq) []string
}

// h2req is a request written as raw HTTP/2 frames: the header block as
// given (the client adds nothing), then DATA when data is not nil.
type h2req struct {
	fields []hpack.HeaderField
	data   []byte
}

// hidden is a complete request that must never reach the origin: any
// request there whose target contains "smuggled" breaks the suite.
func hidden(e env) string {
	return "GET /smuggled?p=" + e.id + " HTTP/1.1\r\nHost: localhost\r\n\r\n"
}

// one is a single-step HTTP/1 exchange.
func one(s string) [][]byte { return [][]byte{[]byte(s)} }

// post builds a POST with the given extra header lines (each ending in
// CRLF) and body.
func post(e env, headers, body string) string {
	return "POST /?p=" + e.id + " HTTP/1.1\r\nHost: localhost\r\n" + headers + "\r\n" + body
}

// clte is a body a Content-Length reader forwards whole and a chunked
// reader ends after its first line: the hidden request follows.
func clte(e env, te string) [][]byte {
	body := "0\r\n\r\n" + hidden(e)
	return one(post(e, "Content-Length: "+strconv.Itoa(len(body))+"\r\n"+te, body))
}

// badCL sends a malformed Content-Length and a body in which the hidden
// request starts right after 5 bytes.
func badCL(e env, cl string) [][]byte {
	return one(post(e, cl, "hello"+hidden(e)))
}

// badChunk sends a chunked body that is malformed where the prefix is,
// followed by the hidden request.
func badChunk(prefix string) func(e env) [][]byte {
	return func(e env) [][]byte {
		return one(post(e, "Transfer-Encoding: chunked\r\n", prefix+hidden(e)))
	}
}

// get builds a GET of path?p=ID with the given extra header lines.
func get(e env, path, headers string) string {
	return "GET " + path + "?p=" + e.id + " HTTP/1.1\r\nHost: localhost\r\n" + headers + "\r\n"
}

// traversal is a request for a path that normalises to the denied /admin.
func traversal(path string) probe {
	return probe{
		name: "path " + path, kind: reject, statuses: []int{400, 403}, keepOpen: true,
		h1: func(e env) [][]byte { return one(get(e, path, "")) },
		check: func(e env, reqs []originReq) []string {
			var out []string
			for _, r := range reqs {
				out = append(out, fmt.Sprintf("deny route bypassed: the origin got %s %s", r.method, r.target))
			}
			return out
		},
	}
}

// absent checks that none of the named headers reached the origin.
func absent(names ...string) func(e env, reqs []originReq) []string {
	return func(e env, reqs []originReq) []string {
		var out []string
		for _, r := range reqs {
			for _, n := range names {
				if v := r.header(n); len(v) > 0 {
					out = append(out, fmt.Sprintf("the origin got %s: %q", n, v))
				}
			}
		}
		return out
	}
}

// h1Probes are the HTTP/1.1 rows, each run on the plaintext and the TLS
// listener.
var h1Probes = []probe{
	{name: "baseline GET", kind: serve, h1: func(e env) [][]byte { return one(get(e, "/", "")) }},
	{name: "POST Content-Length", kind: serve, h1: func(e env) [][]byte { return one(post(e, "Content-Length: 5\r\n", "hello")) },
		check: wantBody("hello")},
	{name: "POST chunked", kind: serve, h1: func(e env) [][]byte {
		return one(post(e, "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))
	}, check: wantBody("hello")},

	// Content-Length and Transfer-Encoding together, and TE obfuscations.
	{name: "CL.TE", kind: reject, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding: chunked\r\n") }},
	{name: "TE.CL", kind: reject, h1: func(e env) [][]byte {
		h := hidden(e)
		body := strconv.FormatInt(int64(len(h)), 16) + "\r\n" + h + "\r\n0\r\n\r\n"
		return one(post(e, "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", body))
	}},
	{name: "TE.TE tab", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding:\tchunked\r\n") }},
	{name: "TE.TE space before colon", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding : chunked\r\n") }},
	{name: "TE.TE CHUNKED", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding: CHUNKED\r\n") }},
	{name: "TE.TE chunked, identity", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding: chunked, identity\r\n") }},
	{name: "TE.TE obs-fold", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding:\r\n chunked\r\n") }},
	{name: `TE.TE \x0bchunked`, kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte { return clte(e, "Transfer-Encoding: \x0bchunked\r\n") }},
	{name: "TE.TE duplicate TE", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte {
		return clte(e, "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n")
	}},
	{name: "TE without CL: chunked, identity", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte {
		return one(post(e, "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"+hidden(e)))
	}},

	// Malformed and conflicting Content-Length.
	{name: "CL +5", kind: reject, h1: func(e env) [][]byte { return badCL(e, "Content-Length: +5\r\n") }},
	{name: "CL 5 5", kind: reject, h1: func(e env) [][]byte { return badCL(e, "Content-Length: 5 5\r\n") }},
	{name: "CL 0x5", kind: reject, h1: func(e env) [][]byte { return badCL(e, "Content-Length: 0x5\r\n") }},
	{name: "CL two values 5, 40", kind: reject, h1: func(e env) [][]byte { return badCL(e, "Content-Length: 5, 40\r\n") }},
	{name: "CL two headers 5 and 40", kind: reject, h1: func(e env) [][]byte {
		return badCL(e, "Content-Length: 5\r\nContent-Length: 40\r\n")
	}},

	// Malformed chunked bodies, each followed by the hidden request.
	{name: "chunk size ffffffffffffffffff", kind: badBody, statuses: []int{400}, h1: badChunk("ffffffffffffffffff\r\n")},
	{name: "chunk size zz", kind: badBody, statuses: []int{400}, h1: badChunk("zz\r\n")},
	{name: "chunk size 2^64 overflow", kind: badBody, statuses: []int{400}, h1: badChunk("10000000000000000\r\nx\r\n")},
	{name: "chunk size bare LF", kind: badBody, statuses: []int{400}, h1: badChunk("5\nhello\r\n0\r\n\r\n")},
	{name: "chunk data without CRLF", kind: badBody, statuses: []int{400}, h1: badChunk("5\r\nhello0\r\n\r\n")},
	{name: `last chunk 0\n\n`, kind: badBody, statuses: []int{400}, h1: badChunk("0\n\n")},

	// The request head.
	{name: "bare LF line ends", kind: safe, h1: func(e env) [][]byte {
		return one("GET /?p=" + e.id + " HTTP/1.1\nHost: localhost\nX-A: 1\n\n")
	}},
	{name: "bare LF hides TE", kind: reject, statuses: []int{400, 501}, h1: func(e env) [][]byte {
		return clte(e, "X-A: 1\nTransfer-Encoding: chunked\r\n")
	}},
	{name: "bare CR in head", kind: reject, h1: func(e env) [][]byte {
		return clte(e, "X-A: 1\rTransfer-Encoding: chunked\r\n")
	}},
	{name: "obs-fold", kind: reject, h1: func(e env) [][]byte { return one(get(e, "/", "X-A: 1\r\n 2\r\n")) }},
	{name: "NUL in value", kind: reject, h1: func(e env) [][]byte { return one(get(e, "/", "X-A: 1\x002\r\n")) }},
	{name: "CR in value", kind: reject, h1: func(e env) [][]byte { return one(get(e, "/", "X-A: 1\r2\r\n")) }},
	{name: "space before colon", kind: reject, h1: func(e env) [][]byte { return one(get(e, "/", "X-A : 1\r\n")) }},
	{name: "Host missing", kind: reject, h1: func(e env) [][]byte {
		return one("GET /?p=" + e.id + " HTTP/1.1\r\nX-A: 1\r\n\r\n")
	}},
	{name: "Host twice", kind: reject, h1: func(e env) [][]byte { return one(get(e, "/", "Host: other.example\r\n")) }},
	{name: "absolute-form, Host differs", kind: safe, h1: func(e env) [][]byte {
		return one("GET http://a.example/?p=" + e.id + " HTTP/1.1\r\nHost: b.example\r\n\r\n")
	}, check: func(e env, reqs []originReq) []string {
		var out []string
		for _, r := range reqs {
			if h := r.header("Host"); len(h) != 1 || h[0] != "a.example" {
				out = append(out, fmt.Sprintf("absolute-form names a.example, the origin got Host %q", h))
			}
		}
		return out
	}},
	{name: "absolute-form to the canary", kind: safe, h1: func(e env) [][]byte {
		return one("GET http://" + e.canary + "/?p=" + e.id + " HTTP/1.1\r\nHost: " + e.canary + "\r\n\r\n")
	}},
	{name: "CONNECT to the canary", kind: reject, statuses: []int{400, 403, 404, 405, 501}, h1: func(e env) [][]byte {
		return one("CONNECT " + e.canary + " HTTP/1.1\r\nHost: " + e.canary + "\r\nX-Probe: " + e.id + "\r\n\r\n" + hidden(e))
	}},
	{name: "HTTP/0.9 request line", kind: reject, statuses: []int{400, 505}, h1: func(e env) [][]byte {
		return one("GET /?p=" + e.id + "\r\n\r\n")
	}},
	{name: "HTTP/2.0 request line", kind: reject, statuses: []int{400, 505}, h1: func(e env) [][]byte {
		return one("GET /?p=" + e.id + " HTTP/2.0\r\nHost: localhost\r\n\r\n")
	}},
	{name: "head over 64 KiB", kind: reject, statuses: []int{431}, h1: func(e env) [][]byte {
		return one(get(e, "/", "X-Big: "+strings.Repeat("a", 70<<10)+"\r\n"))
	}},
	{name: "body holds a whole request", kind: serve, h1: func(e env) [][]byte {
		return one(post(e, "Content-Length: "+strconv.Itoa(len(hidden(e)))+"\r\n", hidden(e)))
	}, check: func(e env, reqs []originReq) []string { return wantBody(hidden(e))(e, reqs) }},
	{name: "Expect: 100-continue", kind: serve, h1: func(e env) [][]byte {
		return [][]byte{[]byte(post(e, "Content-Length: 5\r\nExpect: 100-continue\r\n", "")), []byte("hello")}
	}, check: wantBody("hello")},
	{name: "Upgrade: h2c", kind: serve, responses: 2, h1: func(e env) [][]byte {
		return [][]byte{
			[]byte(get(e, "/", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")),
			[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + hidden(e)),
		}
	}, check: absent("Upgrade", "HTTP2-Settings")},
	traversal("/x/../admin"),
	traversal("/../admin"),
	traversal("/x/%2e%2e/admin"),
	traversal("/./admin"),
	traversal("//admin"),
	{name: "hop-by-hop via Connection", kind: serve, h1: func(e env) [][]byte {
		return one(get(e, "/", "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"))
	}, check: absent("X-Secret")},
	{name: "x-envoy-* from an external client", kind: serve, h1: func(e env) [][]byte {
		return one(get(e, "/", "X-Envoy-Retry-On: 5xx\r\nX-Envoy-Internal: true\r\nX-Envoy-Original-Path: /admin\r\nX-Envoy-Probe: 1\r\n"))
	}, check: absent("X-Envoy-Retry-On", "X-Envoy-Internal", "X-Envoy-Original-Path", "X-Envoy-Probe")},
}

// wantBody checks that a forwarded request arrived with exactly body.
func wantBody(body string) func(e env, reqs []originReq) []string {
	return func(e env, reqs []originReq) []string {
		var out []string
		for _, r := range reqs {
			if string(r.body) != body {
				out = append(out, fmt.Sprintf("the origin got body %q, want %q", clip(r.body, 80), clip([]byte(body), 80)))
			}
		}
		return out
	}
}

// h2Fields is a request's pseudo-headers (:method, :path) for the
// listener's scheme, followed by the extra fields as name, value pairs.
func h2Fields(method, path string, extra ...string) []hpack.HeaderField {
	f := []hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "https"}, {Name: ":authority", Value: "localhost"}, {Name: ":path", Value: path}}
	for i := 0; i+1 < len(extra); i += 2 {
		f = append(f, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return f
}

// h2Probes are the HTTP/2-to-HTTP/1 downgrade rows, each run over TLS (h2
// by ALPN) and h2c (prior knowledge on the plaintext listener).
var h2Probes = []probe{
	{name: "h2 baseline GET", kind: serve, h2: func(e env) h2req { return h2req{fields: h2Fields("GET", "/?p="+e.id)} }},
	{name: "h2 POST content-length", kind: serve, h2: func(e env) h2req {
		return h2req{fields: h2Fields("POST", "/?p="+e.id, "content-length", "5"), data: []byte("hello")}
	}, check: wantBody("hello")},
	{name: "h2 content-length below DATA", kind: badBody, h2: func(e env) h2req {
		return h2req{fields: h2Fields("POST", "/?p="+e.id, "content-length", "5"), data: []byte("hello" + hidden(e))}
	}},
	{name: "h2 content-length above DATA", kind: badBody, h2: func(e env) h2req {
		return h2req{fields: h2Fields("POST", "/?p="+e.id, "content-length", "50"), data: []byte("hello")}
	}},
	{name: "h2 transfer-encoding: chunked", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("POST", "/?p="+e.id, "transfer-encoding", "chunked"), data: []byte("0\r\n\r\n" + hidden(e))}
	}},
	{name: "h2 CRLF in value", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "x-a", "1\r\nX-Injected: 1")}
	}},
	{name: "h2 LF in value", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "x-a", "1\nX-Injected: 1")}
	}},
	{name: "h2 NUL in value", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "x-a", "1\x00X-Injected: 1")}
	}},
	{name: "h2 CRLF in name", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "x-a\r\nx-injected", "1")}
	}},
	{name: "h2 CRLF in :path", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id+" HTTP/1.1\r\nX-Injected: 1\r\n\r\n"+hidden(e)+"GET /")}
	}},
	{name: "h2 CRLF in :method", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET /smuggled?p="+e.id+" HTTP/1.1\r\nHost: localhost\r\n\r\nGET", "/?p="+e.id)}
	}},
	{name: "h2 uppercase name", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "X-Upper", "1")}
	}},
	{name: "h2 connection-specific header", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "connection", "x-secret", "x-secret", "1")}
	}},
	{name: "h2 upgrade: h2c", kind: reject, h2: func(e env) h2req {
		return h2req{fields: h2Fields("GET", "/?p="+e.id, "upgrade", "h2c", "http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")}
	}},
}

// allowed reports whether status is one a reject or badBody probe may get.
func (p probe) allowed(status int) bool {
	if len(p.statuses) == 0 {
		return status >= 400 && status < 500
	}
	return slices.Contains(p.statuses, status)
}
