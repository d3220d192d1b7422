package http1

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Each benchmark runs hopwatch's codec and net/http's on the same input,
// as sub-benchmarks "hopwatch" and "net_http", so that one
// `go test -bench` run compares them.

var benchRequests = []struct{ name, head string }{
	{
		// What wrk and curl send.
		name: "curl",
		head: "GET /api/v1/items?id=42 HTTP/1.1\r\nHost: service.example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	},
	{
		// A browser navigation: a dozen headers, cookies, client hints.
		name: "browser",
		head: "GET /products/shoes?color=blue&size=42 HTTP/1.1\r\n" +
			"Host: shop.example.com\r\n" +
			"Connection: keep-alive\r\n" +
			"Cache-Control: max-age=0\r\n" +
			"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
			"sec-ch-ua-mobile: ?0\r\n" +
			"sec-ch-ua-platform: \"Linux\"\r\n" +
			"Upgrade-Insecure-Requests: 1\r\n" +
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
			"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
			"Sec-Fetch-Site: same-origin\r\n" +
			"Sec-Fetch-Mode: navigate\r\n" +
			"Referer: https://shop.example.com/products?category=shoes\r\n" +
			"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
			"Accept-Language: en-GB,en;q=0.9,de;q=0.8\r\n" +
			"Cookie: session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; consent=1\r\n" +
			"\r\n",
	},
}

// benchReads runs read once an iteration on a buffered reader rewound to
// raw, as a connection's reader would hold it, counting raw's bytes.
func benchReads(b *testing.B, raw string, read func(*bufio.Reader) error) {
	sr := strings.NewReader(raw)
	r := bufio.NewReaderSize(sr, bufferSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		sr.Reset(raw)
		r.Reset(sr)
		if err := read(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	for _, br := range benchRequests {
		b.Run(br.name+"/hopwatch", func(b *testing.B) {
			var buf []byte
			benchReads(b, br.head, func(r *bufio.Reader) error {
				head, err := readHead(r, buf, defaultMaxHeaderBytes)
				if err != nil {
					return err
				}
				buf = head[:0] // the connection keeps its head buffer
				_, err = parseHead(string(head), new(http.Request))
				return err
			})
		})
		b.Run(br.name+"/net_http", func(b *testing.B) {
			benchReads(b, br.head, func(r *bufio.Reader) error {
				_, err := http.ReadRequest(r)
				return err
			})
		})
	}
}

// rewindBody is a request body that can be read again.
type rewindBody struct{ strings.Reader }

func (*rewindBody) Close() error { return nil }

func benchOutgoingRequests(b *testing.B) []struct {
	name string
	req  *http.Request
	body *rewindBody
} {
	b.Helper()
	u, err := url.Parse("http://10.0.0.7:8080/api/v1/items?id=42&fields=name,price")
	if err != nil {
		b.Fatal(err)
	}
	header := http.Header{
		"User-Agent":                     {"curl/8.5.0"},
		"Accept":                         {"*/*"},
		"X-Request-Id":                   {"3f2a8c1e-7b5d-4e9f-a6c0-1d2e3f4a5b6c"},
		"X-Forwarded-For":                {"203.0.113.7"},
		"X-Forwarded-Proto":              {"http"},
		"X-Envoy-Expected-Rq-Timeout-Ms": {"15000"},
	}
	get := &http.Request{Method: "GET", URL: u, Host: "service.example.com", Header: header, Body: nil}
	body := &rewindBody{}
	const payload = `{"name":"shoe","price":42,"colors":["blue","red"]}`
	body.Reset(payload)
	post := &http.Request{Method: "POST", URL: u, Host: "service.example.com", Header: header.Clone(), Body: body, ContentLength: int64(len(payload))}
	post.Header.Set("Content-Type", "application/json")
	return []struct {
		name string
		req  *http.Request
		body *rewindBody
	}{{"get", get, nil}, {"post", post, body}}
}

func BenchmarkWriteRequest(b *testing.B) {
	for _, tc := range benchOutgoingRequests(b) {
		payload := ""
		if tc.body != nil {
			payload = readAllString(b, tc.body)
		}
		run := func(b *testing.B, write func(*bufio.Writer, *http.Request) error) {
			bw := bufio.NewWriterSize(io.Discard, bufferSize)
			b.ReportAllocs()
			for b.Loop() {
				if tc.body != nil {
					tc.body.Reset(payload)
				}
				if err := write(bw, tc.req); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(tc.name+"/hopwatch", func(b *testing.B) { run(b, WriteRequest) })
		b.Run(tc.name+"/net_http", func(b *testing.B) {
			run(b, func(bw *bufio.Writer, req *http.Request) error {
				if err := req.Write(bw); err != nil {
					return err
				}
				return bw.Flush()
			})
		})
	}
}

func readAllString(b *testing.B, r io.Reader) string {
	b.Helper()
	s, err := io.ReadAll(r)
	if err != nil {
		b.Fatal(err)
	}
	return string(s)
}

var benchResponses = []struct {
	name, raw string
	bodyLen   int64
}{
	{
		name:    "content_length",
		bodyLen: 50,
		raw: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 02 Jun 2025 10:00:00 GMT\r\n" +
			"Server: upstream\r\nX-Request-Id: 3f2a8c1e-7b5d-4e9f-a6c0-1d2e3f4a5b6c\r\nContent-Length: 50\r\n\r\n" +
			`{"name":"shoe","price":42,"colors":["blue","red"]}`,
	},
	{
		name:    "chunked_trailers",
		bodyLen: 0x1a,
		raw: "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status, Grpc-Message\r\n\r\n" +
			"1a\r\n\x00\x00\x00\x00\x14{\"name\":\"shoe\",\"p\":1}\r\n" +
			"0\r\nGrpc-Status: 0\r\nGrpc-Message: OK\r\n\r\n",
	},
}

func BenchmarkReadResponse(b *testing.B) {
	req := &http.Request{Method: "GET"}
	for _, tc := range benchResponses {
		// drain reads the whole body, as the proxy copies it downstream.
		drain := func(res *http.Response, err error) error {
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if err != nil {
				return fmt.Errorf("body after %d bytes: %w", n, err)
			}
			if n != tc.bodyLen {
				return fmt.Errorf("body: %d bytes, want %d", n, tc.bodyLen)
			}
			return nil
		}
		b.Run(tc.name+"/hopwatch", func(b *testing.B) {
			benchReads(b, tc.raw, func(r *bufio.Reader) error { return drain(ReadResponse(r, req, defaultMaxHeaderBytes)) })
		})
		b.Run(tc.name+"/net_http", func(b *testing.B) {
			benchReads(b, tc.raw, func(r *bufio.Reader) error { return drain(http.ReadResponse(r, req)) })
		})
	}
}
