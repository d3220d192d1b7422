package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// codecLimit is the head limit the parser tests use unless they test it.
const codecLimit = 8 << 10

// parseRawRequest runs a request head through readHead and parseHead as
// ServeConn does.
func parseRawRequest(in string, limit int) (*http.Request, parsedRequest, error) {
	br := bufio.NewReader(strings.NewReader(in))
	head, err := readHead(br, nil, limit)
	if err != nil {
		return nil, parsedRequest{}, err
	}
	req := new(http.Request)
	p, err := parseHead(string(head), req)
	if err != nil {
		return nil, p, err
	}
	return req, p, nil
}

func TestParseHeadValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want holds the fields compared; Header nil means "empty".
		want           http.Request
		rawPath        string
		expectContinue bool
	}{
		{
			name: "origin-form",
			in:   "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/index.html", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com",
				Header: http.Header{"User-Agent": {"curl/8.5.0"}, "Accept": {"*/*"}}},
		},
		{
			name: "origin-form with query",
			in:   "GET /search?q=a+b&lang=en HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/search?q=a+b&lang=en", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"},
		},
		{
			name: "origin-form with escapes",
			in:   "GET /a%2Fb/c%20d?x=%41 HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/a%2Fb/c%20d?x=%41", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"},
			// The path decodes to "/a/b/c d"; RawPath keeps the %2F that
			// makes it differ from the default encoding.
			rawPath: "/a%2Fb/c%20d",
		},
		{
			// Regression (found by FuzzParseHead): the fast path lost
			// RawPath, so sub-delims were re-escaped when forwarded.
			name:    "origin-form with sub-delims kept verbatim",
			in:      "GET /a!b/(c)/d*e/'f'/g:h@i HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want:    http.Request{Method: "GET", RequestURI: "/a!b/(c)/d*e/'f'/g:h@i", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"},
			rawPath: "/a!b/(c)/d*e/'f'/g:h@i",
		},
		{
			// Regression: the fast path dropped ForceQuery, so "/p?" was
			// forwarded as "/p".
			name: "origin-form with an empty query",
			in:   "GET /p? HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/p?", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"},
		},
		{
			name: "absolute-form: its host wins over the Host header",
			in:   "GET http://origin.example:8080/p?q=1 HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "http://origin.example:8080/p?q=1", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "origin.example:8080"},
		},
		{
			name: "CONNECT authority-form",
			in:   "CONNECT upstream.example:443 HTTP/1.1\r\nHost: upstream.example:443\r\n\r\n",
			want: http.Request{Method: "CONNECT", RequestURI: "upstream.example:443", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "upstream.example:443"},
		},
		{
			name: "CONNECT authority-form without Host header",
			in:   "CONNECT [::1]:8443 HTTP/1.1\r\n\r\n",
			want: http.Request{Method: "CONNECT", RequestURI: "[::1]:8443", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "[::1]:8443"},
		},
		{
			name: "OPTIONS asterisk-form",
			in:   "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
			want: http.Request{Method: "OPTIONS", RequestURI: "*", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com"},
		},
		{
			name: "HTTP/1.0 without Host closes by default",
			in:   "GET / HTTP/1.0\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0, Close: true},
		},
		{
			name: "HTTP/1.0 keep-alive",
			in:   "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0,
				Header: http.Header{"Connection": {"Keep-Alive"}}},
		},
		{
			// Regression: "close" used to lose to "keep-alive" on 1.0.
			name: "HTTP/1.0 keep-alive and close: close wins",
			in:   "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0, Close: true,
				Header: http.Header{"Connection": {"keep-alive, close"}}},
		},
		{
			name: "HTTP/1.1 Connection: close among other tokens",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nConnection: x-foo ,\tCLOSE\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h", Close: true,
				Header: http.Header{"Connection": {"Upgrade", "x-foo ,\tCLOSE"}}},
		},
		{
			// Regression: Unicode folding read U+212A (Kelvin) as 'k'.
			name: "HTTP/1.0 Kelvin-sign keep-alive is not keep-alive",
			in:   "GET / HTTP/1.0\r\nConnection: \u212Aeep-alive\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.0", ProtoMajor: 1, ProtoMinor: 0, Close: true,
				Header: http.Header{"Connection": {"\u212Aeep-alive"}}},
		},
		{
			name: "HTTP/1.1 keep-alive by default",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				Header: http.Header{"Connection": {"keep-alive"}}},
		},
		{
			name: "HTTP/1.2 is served as 1.x",
			in:   "GET / HTTP/1.2\r\nHost: h\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.2", ProtoMajor: 1, ProtoMinor: 2, Host: "h"},
		},
		{
			name: "duplicate headers merge in order, names canonicalised",
			in:   "GET / HTTP/1.1\r\nhost: h\r\nx-forwarded-for: 10.0.0.1\r\nACCEPT: a\r\nX-FORWARDED-FOR: 10.0.0.2\r\nx-Forwarded-For:10.0.0.3\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				Header: http.Header{"X-Forwarded-For": {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, "Accept": {"a"}}},
		},
		{
			name: "values trimmed of SP and HTAB, inner whitespace kept, empty value kept",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nX-A: \t a  b \t\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				Header: http.Header{"X-A": {"a  b"}, "X-Empty": {""}, "X-Obs": {"caf\xc3\xa9"}}},
		},
		{
			name: "Content-Length",
			in:   "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\n\r\n",
			want: http.Request{Method: "POST", RequestURI: "/upload", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h", ContentLength: 42,
				Header: http.Header{"Content-Length": {"42"}}},
		},
		{
			name: "Content-Length repeated identically",
			in:   "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length:  7\r\n\r\n",
			want: http.Request{Method: "POST", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h", ContentLength: 7,
				Header: http.Header{"Content-Length": {"7", "7"}}},
		},
		{
			name: "chunked with announced trailers",
			in:   "POST /rpc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nTrailer: grpc-status, Grpc-Message\r\nTrailer: x-checksum\r\n\r\n",
			want: http.Request{Method: "POST", RequestURI: "/rpc", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				ContentLength: -1, TransferEncoding: []string{"chunked"},
				Trailer: http.Header{"Grpc-Status": nil, "Grpc-Message": nil, "X-Checksum": nil},
				Header:  http.Header{"Trailer": {"grpc-status, Grpc-Message", "x-checksum"}}},
		},
		{
			name: "Expect: 100-continue is consumed",
			in:   "PUT /obj HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
			want: http.Request{Method: "PUT", RequestURI: "/obj", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h", ContentLength: 3,
				Header: http.Header{"Content-Length": {"3"}}},
			expectContinue: true,
		},
		{
			name: "Expect: 100-continue without a body waits for nothing",
			in:   "GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h"},
		},
		{
			name: "leading empty lines skipped",
			in:   "\r\n\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h"},
		},
		{
			name: "bare LF line endings",
			in:   "GET /lf HTTP/1.1\nHost: h\nX-A: b\n\n",
			want: http.Request{Method: "GET", RequestURI: "/lf", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				Header: http.Header{"X-A": {"b"}}},
		},
		{
			name: "empty Host header on 1.1 is present",
			in:   "GET / HTTP/1.1\r\nHost:\r\n\r\n",
			want: http.Request{Method: "GET", RequestURI: "/", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1},
		},
		{
			name: "extension method",
			in:   "PROPFIND /dav HTTP/1.1\r\nHost: h\r\nDepth: 1\r\n\r\n",
			want: http.Request{Method: "PROPFIND", RequestURI: "/dav", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "h",
				Header: http.Header{"Depth": {"1"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, p, err := parseRawRequest(tt.in, codecLimit)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			w := tt.want
			if w.Header == nil {
				w.Header = http.Header{}
			}
			check := func(field string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", field, got, want)
				}
			}
			check("Method", req.Method, w.Method)
			check("RequestURI", req.RequestURI, w.RequestURI)
			check("Proto", req.Proto, w.Proto)
			check("ProtoMajor.Minor", [2]int{req.ProtoMajor, req.ProtoMinor}, [2]int{w.ProtoMajor, w.ProtoMinor})
			check("Host", req.Host, w.Host)
			check("Header", req.Header, w.Header)
			check("ContentLength", req.ContentLength, w.ContentLength)
			check("TransferEncoding", req.TransferEncoding, w.TransferEncoding)
			check("Trailer", req.Trailer, w.Trailer)
			check("Close", req.Close, w.Close)
			check("expectContinue", p.expectContinue, tt.expectContinue)
			check("chunked", p.chunked, w.ContentLength == -1)
			if _, ok := req.Header["Host"]; ok {
				t.Error("Host left in req.Header")
			}
			// URL must agree with net/url's reading of the same target.
			wantURL := urlOf(t, w.Method, w.RequestURI)
			check("URL.Scheme", req.URL.Scheme, wantURL.Scheme)
			check("URL.Host", req.URL.Host, wantURL.Host)
			check("URL.Path", req.URL.Path, wantURL.Path)
			check("URL.RawQuery", req.URL.RawQuery, wantURL.RawQuery)
			check("URL.ForceQuery", req.URL.ForceQuery, wantURL.ForceQuery)
			check("URL.EscapedPath", req.URL.EscapedPath(), wantURL.EscapedPath())
			if tt.rawPath != "" {
				check("URL.RawPath", req.URL.RawPath, tt.rawPath)
			}
			// What the proxy forwards is the target it received.
			if req.Method != http.MethodConnect && req.RequestURI != "*" && req.URL.Host == "" {
				wire, err := writeRequestBytes(&http.Request{Method: req.Method, URL: req.URL, Host: req.Host, Header: http.Header{}})
				if err != nil {
					t.Fatal(err)
				}
				if line, _, _ := strings.Cut(wire, "\r\n"); line != req.Method+" "+req.RequestURI+" HTTP/1.1" {
					t.Errorf("forwarded as %q, received %q", line, req.RequestURI)
				}
			}
		})
	}
}

// urlOf is how net/http reads a request target.
func urlOf(t *testing.T, method, target string) *url.URL {
	t.Helper()
	in := method + " " + target + " HTTP/1.1\r\nHost: h\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
	if err != nil {
		t.Fatalf("net/http cannot read target %q: %v", target, err)
	}
	return req.URL
}

func TestParseHeadInvalid(t *testing.T) {
	const host = "Host: h\r\n"
	tests := []struct {
		name   string
		in     string
		status int
		// mention must appear in the error text: the offending thing.
		mention string
	}{
		// Framing: request smuggling defences.
		{"TE and CL", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "both Transfer-Encoding and Content-Length"},
		{"TE gzip", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 501, `"gzip"`},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, `"gzip, chunked"`},
		{"TE twice", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, `"chunked, chunked"`},
		{"TE identity", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", 501, `"identity"`},
		// Regression: strings.EqualFold matched U+212A (Kelvin sign) as 'k'.
		{"TE chunked spelled with a Kelvin sign", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chun\u212Aed\r\n\r\n", 501, "unsupported Transfer-Encoding"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in an HTTP/1.0 request"},
		{"CL conflicting", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400, `conflicting Content-Length values "5, 6"`},
		{"CL list", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\n", 400, `invalid Content-Length "5, 5"`},
		{"CL negative", "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400, `invalid Content-Length "-1"`},
		{"CL plus sign", "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\n", 400, `invalid Content-Length "+5"`},
		{"CL hex", "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x10\r\n\r\n", 400, `invalid Content-Length "0x10"`},
		{"CL empty", "POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n", 400, `invalid Content-Length ""`},
		{"CL too long", "POST / HTTP/1.1\r\n" + host + "Content-Length: 9999999999999999999\r\n\r\n", 400, `invalid Content-Length "9999999999999999999"`},
		// Regression: strings.TrimSpace dropped a trailing U+00A0.
		{"CL with NBSP", "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\u00a0\r\n\r\n", 400, "invalid Content-Length"},
		{"forbidden trailer announced", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTrailer: X-Sum, content-length\r\n\r\n", 400, `"Content-Length"`},
		// Header lines.
		{"obs-fold", "GET / HTTP/1.1\r\n" + host + "X-A: b\r\n  folded\r\n\r\n", 400, `obsolete line folding in header line "  folded"`},
		{"obs-fold with tab on first header", "GET / HTTP/1.1\r\n\tX-A: b\r\n" + host + "\r\n", 400, "obsolete line folding"},
		{"header without colon", "GET / HTTP/1.1\r\n" + host + "X-No-Colon\r\n\r\n", 400, `header line without a colon: "X-No-Colon"`},
		{"space before colon", "GET / HTTP/1.1\r\n" + host + "X-A : b\r\n\r\n", 400, `invalid header name "X-A "`},
		{"empty header name", "GET / HTTP/1.1\r\n" + host + ": b\r\n\r\n", 400, `invalid header name ""`},
		{"non-token header name", "GET / HTTP/1.1\r\n" + host + "X(A): b\r\n\r\n", 400, `invalid header name "X(A)"`},
		{"NUL in value", "GET / HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n", 400, `invalid value of header "X-A"`},
		{"bare CR in value", "GET / HTTP/1.1\r\n" + host + "X-B: a\rb\r\n\r\n", 400, `invalid value of header "X-B"`},
		{"CR CR LF ending", "GET / HTTP/1.1\r\n" + host + "X-C: a\r\r\n\r\n", 400, `invalid value of header "X-C"`},
		{"DEL in value", "GET / HTTP/1.1\r\n" + host + "X-D: a\x7f\r\n\r\n", 400, `invalid value of header "X-D"`},
		// Host.
		{"missing Host on 1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "missing required Host header"},
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host header"},
		{"duplicate Host, different case", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "more than one Host header"},
		{"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, `malformed Host header "a b"`},
		{"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, `malformed Host header "a/b"`},
		// Expect.
		{"Expect other", "PUT / HTTP/1.1\r\n" + host + "Expect: 200-ok\r\nContent-Length: 1\r\n\r\n", 417, `unsupported Expect "200-ok"`},
		{"Expect twice", "PUT / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nExpect: 100-continue\r\n\r\n", 417, `"100-continue, 100-continue"`},
		// Request line.
		{"HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n", 505, `"HTTP/2.0"`},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, `"HTTP/2.0"`},
		{"HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", 505, `"HTTP/0.9"`},
		{"malformed version", "GET / HTTP/1\r\n" + host + "\r\n", 400, `malformed HTTP version "HTTP/1"`},
		{"lowercase version", "GET / http/1.1\r\n" + host + "\r\n", 400, `malformed HTTP version "http/1.1"`},
		{"HTTP/1.10", "GET / HTTP/1.10\r\n" + host + "\r\n", 400, `malformed HTTP version "HTTP/1.10"`},
		{"no version", "GET /\r\n" + host + "\r\n", 400, `malformed request line "GET /"`},
		{"only method", "GET\r\n\r\n", 400, `malformed request line "GET"`},
		{"bare CR in request line", "GET /a\rb HTTP/1.1\r\n" + host + "\r\n", 400, "bare CR in the request line"},
		{"CR before the version", "GET / \rHTTP/1.1\r\n" + host + "\r\n", 400, "bare CR in the request line"},
		{"non-token method", "GE(T / HTTP/1.1\r\n" + host + "\r\n", 400, `invalid method "GE(T"`},
		{"method with a NUL", "G\x00T / HTTP/1.1\r\n" + host + "\r\n", 400, `invalid method "G\x00T"`},
		{"empty method", " / HTTP/1.1\r\n" + host + "\r\n", 400, `invalid method ""`},
		{"target with a space", "GET /a b HTTP/1.1\r\n" + host + "\r\n", 400, `malformed HTTP version "b HTTP/1.1"`},
		{"double space before target", "GET  / HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target ""`},
		{"target with a control byte", "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "/a\x01b"`},
		{"target with a tab", "GET /a\tb HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "/a\tb"`},
		{"target with DEL", "GET /a\x7f HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "/a\x7f"`},
		{"target with a high byte", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400, "invalid request target"},
		{"target with a bad escape", "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "/a%zz"`},
		{"relative target", "GET index.html HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "index.html"`},
		{"absolute-form without authority", "GET mailto:x HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "mailto:x"`},
		{"absolute-form with an escaped non-ASCII host", "GET http://caf%C3%A9/ HTTP/1.1\r\n" + host + "\r\n", 400, `invalid request target "http://caf%C3%A9/"`},
		{"asterisk with GET", "GET * HTTP/1.1\r\n" + host + "\r\n", 400, `"*" is only allowed with OPTIONS`},
		{"CONNECT with userinfo", "CONNECT user@host:443 HTTP/1.1\r\n" + host + "\r\n", 400, `invalid CONNECT authority "user@host:443"`},
		{"CONNECT with a path", "CONNECT host:443/x HTTP/1.1\r\n" + host + "\r\n", 400, `invalid CONNECT authority "host:443/x"`},
		{"CONNECT with a query", "CONNECT host:443?x HTTP/1.1\r\n" + host + "\r\n", 400, `invalid CONNECT authority "host:443?x"`},
		{"CONNECT with a bad port", "CONNECT host:https HTTP/1.1\r\n" + host + "\r\n", 400, `invalid CONNECT authority "host:https"`},
		{"too many leading empty lines", strings.Repeat("\r\n", maxLeadingEmptyLines+1) + "GET / HTTP/1.1\r\n" + host + "\r\n", 400, "too many empty lines before the request line"},
		{"long value clipped in the error", "GET / HTTP/1.1\r\n" + host + "X-Long: " + strings.Repeat("a", 100) + "\x00\r\n\r\n", 400, `invalid value of header "X-Long"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseRawRequest(tt.in, codecLimit)
			if err == nil {
				t.Fatal("accepted")
			}
			var re *requestError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *requestError", err, err)
			}
			if re.status != tt.status {
				t.Errorf("status %d, want %d (%v)", re.status, tt.status, err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if len(re.reason) > 200 {
				t.Errorf("reason is %d bytes: client input not clipped", len(re.reason))
			}
		})
	}
}

func TestReadHeadLimit(t *testing.T) {
	base := "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: "
	const end = "\r\n\r\n"
	const limit = 256
	pad := strings.Repeat("p", limit-len(base)-len(end))
	atLimit := base + pad + end
	if len(atLimit) != limit {
		t.Fatalf("test bug: head is %d bytes", len(atLimit))
	}
	t.Run("exactly at the limit", func(t *testing.T) {
		req, _, err := parseRawRequest(atLimit, limit)
		if err != nil {
			t.Fatalf("head of exactly %d bytes refused: %v", limit, err)
		}
		if got := req.Header.Get("X-Pad"); got != pad {
			t.Errorf("X-Pad is %d bytes, want %d", len(got), len(pad))
		}
	})
	t.Run("one byte over", func(t *testing.T) {
		over := base + pad + "p" + end
		_, _, err := parseRawRequest(over, limit)
		if !errors.Is(err, errHeadTooLarge) {
			t.Fatalf("err = %v, want errHeadTooLarge", err)
		}
		var re *requestError
		if !errors.As(err, &re) || re.status != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("err = %v, want a 431", err)
		}
	})
	t.Run("one endless line", func(t *testing.T) {
		// Never ends: readHead must stop at the limit, not at EOF.
		br := bufio.NewReaderSize(io.MultiReader(strings.NewReader("GET /"), endless('a')), 16)
		_, err := readHead(br, nil, limit)
		if !errors.Is(err, errHeadTooLarge) {
			t.Fatalf("err = %v, want errHeadTooLarge", err)
		}
	})
	t.Run("leading empty lines do not count", func(t *testing.T) {
		in := strings.Repeat("\r\n", maxLeadingEmptyLines) + atLimit
		if _, _, err := parseRawRequest(in, limit); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// endless is a reader of one byte repeated forever.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestReadHeadEndings(t *testing.T) {
	t.Run("clean EOF before a request", func(t *testing.T) {
		for _, in := range []string{"", "\r\n", "\r\n\r\n"} {
			head, err := readHead(bufio.NewReader(strings.NewReader(in)), nil, codecLimit)
			if !errors.Is(err, io.EOF) || len(head) != 0 {
				t.Errorf("%q: head %q, err %v; want nothing and io.EOF", in, head, err)
			}
			var torn errTornHead
			if errors.As(err, &torn) {
				t.Errorf("%q: a close between requests reported as torn", in)
			}
		}
	})
	t.Run("torn head", func(t *testing.T) {
		for _, in := range []string{"G", "GET / HTTP/1.1", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: h\r\n", "GET / HTTP/1.1\r\nHost: h\r\n\r"} {
			head, err := readHead(bufio.NewReader(strings.NewReader(in)), nil, codecLimit)
			var torn errTornHead
			if !errors.As(err, &torn) {
				t.Errorf("%q: err = %v (%T), want errTornHead", in, err, err)
				continue
			}
			if !errors.Is(err, io.EOF) {
				t.Errorf("%q: errTornHead does not unwrap to io.EOF", in)
			}
			if string(head) != in {
				t.Errorf("%q: head %q", in, head)
			}
		}
	})
	t.Run("stops at the end of the head", func(t *testing.T) {
		br := bufio.NewReader(strings.NewReader("GET / HTTP/1.1\nHost: h\n\nBODY"))
		head, err := readHead(br, nil, codecLimit)
		if err != nil || string(head) != "GET / HTTP/1.1\nHost: h\n\n" {
			t.Fatalf("head %q, err %v", head, err)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "BODY" {
			t.Errorf("left %q in the reader, want BODY", rest)
		}
	})
	t.Run("lines longer than the reader's buffer", func(t *testing.T) {
		long := strings.Repeat("v", 100)
		in := "GET /" + strings.Repeat("p", 50) + " HTTP/1.1\r\nHost: h\r\nX-Long: " + long + "\r\n\r\n"
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		head, err := readHead(br, nil, codecLimit)
		if err != nil {
			t.Fatal(err)
		}
		req := new(http.Request)
		if _, err := parseHead(string(head), req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("X-Long") != long || len(req.URL.Path) != 51 {
			t.Errorf("long line mangled: %q %q", req.Header.Get("X-Long"), req.URL.Path)
		}
	})
	t.Run("reuses the caller's buffer", func(t *testing.T) {
		buf := make([]byte, 0, 512)
		head, err := readHead(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: h\r\n\r\n")), buf, codecLimit)
		if err != nil {
			t.Fatal(err)
		}
		if &head[:1][0] != &buf[:1][0] {
			t.Error("readHead allocated a new buffer although the caller's had room")
		}
	})
}

func TestReadLinesTrailer(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no trailers", "\r\nNEXT", "\r\n"},
		{"no trailers, bare LF", "\nNEXT", "\n"},
		{"trailers", "Grpc-Status: 0\r\nX-Sum: abc\r\n\r\nNEXT", "Grpc-Status: 0\r\nX-Sum: abc\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			got, err := readLines(br, nil, codecLimit, false)
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != "NEXT" {
				t.Errorf("left %q, want NEXT", rest)
			}
		})
	}
	t.Run("trailer sections need CRLF", func(t *testing.T) {
		for _, in := range []string{"\r\n", "X-A: 1\r\n\r\n"} {
			if _, err := readTrailerSection(bufio.NewReader(strings.NewReader(in)), codecLimit); err != nil {
				t.Errorf("%q: %v", in, err)
			}
		}
		for _, in := range []string{"\n", "X-A: 1\n\r\n", "X-A: 1\r\n\n", "X-A: 1\r\r\n\n"} {
			_, err := readTrailerSection(bufio.NewReader(strings.NewReader(in)), codecLimit)
			if err == nil || !strings.Contains(err.Error(), "bare LF") {
				t.Errorf("%q: err = %v, want a bare-LF refusal", in, err)
			}
		}
	})
	t.Run("parsed into the announced map", func(t *testing.T) {
		announced := http.Header{"Grpc-Status": nil}
		h, err := parseHeaderLines("grpc-status: 0\r\nX-Extra: 1\r\n\r\n", announced)
		if err != nil {
			t.Fatal(err)
		}
		want := http.Header{"Grpc-Status": {"0"}, "X-Extra": {"1"}}
		if !reflect.DeepEqual(h, want) || !reflect.DeepEqual(announced, want) {
			t.Errorf("trailers %v (announced map %v), want %v", h, announced, want)
		}
	})
}

func TestCanonicalKey(t *testing.T) {
	for _, name := range []string{"host", "HOST", "Host", "x-forwarded-for", "X-Forwarded-For", "x-FORWARDED-for", "a", "A", "content-md5", "x--y", "1-a", "-x", "x-"} {
		if got, want := canonicalKey(name), http.CanonicalHeaderKey(name); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", name, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = canonicalKey("X-Forwarded-For") }); n != 0 {
		t.Errorf("canonicalKey allocates %v times for a canonical name", n)
	}
}

func TestAnnouncedTrailers(t *testing.T) {
	got, err := announcedTrailers([]string{"a, ,b", " c\t", "bad name, grpc-status"})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"A": nil, "B": nil, "C": nil, "Grpc-Status": nil}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"transfer-encoding", "Trailer", "CONTENT-LENGTH"} {
		if _, err := announcedTrailers([]string{"x-ok, " + bad}); err == nil {
			t.Errorf("%q accepted as an announced trailer", bad)
		}
	}
}

// TestChunkedTrailerBareLF: a chunked body ends with CRLF, never a bare
// LF (RFC 9112 errata 7633, which Go's chunked reader follows for chunk
// lines). A server that took "0\r\n\n" as the end of the body would read
// what a stricter front proxy saw as trailer bytes as a second request.
func TestChunkedTrailerBareLF(t *testing.T) {
	bodyErrs := make(chan error, 4)
	paths := make(chan string, 4)
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		_, err := io.ReadAll(r.Body)
		bodyErrs <- err
	})}
	addr := serveLoopback(t, srv)

	for _, tt := range []struct{ name, trailer string }{
		{"bare LF ends the trailer section", "0\r\n\n"},
		{"bare LF ends a trailer field", "0\r\nX-T: 1\n\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialLoopback(t, addr)
			in := "POST /first HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + tt.trailer +
				"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
			if _, err := io.WriteString(c, in); err != nil {
				t.Fatal(err)
			}
			if p := <-paths; p != "/first" {
				t.Fatalf("first request path %q", p)
			}
			if err := <-bodyErrs; err == nil {
				t.Error("body with a bare-LF trailer section read without error")
			}
			// The connection must end without serving a second request.
			_, _ = io.Copy(io.Discard, c)
			select {
			case p := <-paths:
				t.Errorf("served a second request %q from the trailer bytes", p)
			default:
			}
		})
	}
}
