package router

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// tunnelThrough serves one upgrade request with tunnel, the upstream's
// answer being res, and returns a client connection that already sent the
// request head followed by early, the first tunnelled bytes.
func tunnelThrough(t *testing.T, fr *Request, res *http.Response, early string) (net.Conn, *bufio.Reader, <-chan struct{}) {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		defer close(done)
		tunnel(w, fr, res)
	}))
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"+early); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c), done
}

func TestTunnel(t *testing.T) {
	upstream, origin := net.Pipe()
	t.Cleanup(func() { _ = origin.Close() })
	_ = origin.SetDeadline(time.Now().Add(10 * time.Second))
	fr := &Request{Info: &streaminfo.Info{}, Upgrade: "websocket", ServerName: "hopwatch",
		PrepareResponse: func(h http.Header) { h["X-Request-Id"] = []string{"rid"} }}
	res := &http.Response{StatusCode: http.StatusSwitchingProtocols, Body: upstream, Header: http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {"WebSocket"}, "Sec-Websocket-Accept": {"k"}, "Server": {"origin"},
	}}
	c, br, done := tunnelThrough(t, fr, res, "early|")

	head := readResponseHead(t, br)
	for _, want := range []string{"HTTP/1.1 101 Switching Protocols\r\n", "\r\nConnection: Upgrade\r\n", "\r\nUpgrade: WebSocket\r\n",
		"\r\nSec-Websocket-Accept: k\r\n", "\r\nServer: hopwatch\r\n", "\r\nX-Request-Id: rid\r\n"} {
		if !strings.Contains("\r\n"+head, want) {
			t.Errorf("101 head %q lacks %q", head, want)
		}
	}
	if n := strings.Count(strings.ToLower(head), "connection:"); n != 1 {
		t.Errorf("101 head has %d Connection fields, want 1: %q", n, head)
	}
	// Bytes the client sent right behind the request head, which the
	// server had already buffered, reach the upstream first.
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("early|ping"))
	if _, err := io.ReadFull(origin, got); err != nil || string(got) != "early|ping" {
		t.Fatalf("upstream read %q, %v", got, err)
	}
	if _, err := io.WriteString(origin, "pong"); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 4)
	if _, err := io.ReadFull(br, back); err != nil || string(back) != "pong" {
		t.Fatalf("client read %q, %v", back, err)
	}
	// The upstream closing ends the tunnel and closes the client's side.
	_ = origin.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel outlived its upstream")
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the upstream closed, the client read %q, %v; want EOF", rest, err)
	}
	if fr.Info.ResponseCode != http.StatusSwitchingProtocols || fr.Info.BytesReceived != int64(len("early|ping")) || fr.Info.BytesSent != 4 {
		t.Errorf("info: code %d, received %d, sent %d", fr.Info.ResponseCode, fr.Info.BytesReceived, fr.Info.BytesSent)
	}
}

// TestTunnelRefusals: an upstream that switches to another protocol than
// the one asked for, or whose 101 carries no connection, gets 502.
func TestTunnelRefusals(t *testing.T) {
	tests := []struct {
		name    string
		asked   string
		body    io.ReadCloser
		details string
	}{
		{"other protocol", "websocket", nopRWC{}, "upgrade_mismatch"},
		{"no upgrade asked", "", nopRWC{}, "upgrade_mismatch"},
		{"body is not a connection", "websocket", http.NoBody, "upgrade_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := &Request{Info: &streaminfo.Info{}, Upgrade: tt.asked, ServerName: "hopwatch"}
			res := &http.Response{StatusCode: http.StatusSwitchingProtocols, Body: tt.body, Header: http.Header{"Upgrade": {"h2c"}}}
			_, br, done := tunnelThrough(t, fr, res, "")
			if head := readResponseHead(t, br); !strings.HasPrefix(head, "HTTP/1.1 502 ") {
				t.Errorf("response %q, want 502", head)
			}
			<-done
			if fr.Info.ResponseCodeDetails != tt.details || !fr.Info.ResponseFlags.Has(streaminfo.UpstreamProtocolError) {
				t.Errorf("details %q flags %s, want %s and UPE", fr.Info.ResponseCodeDetails, fr.Info.ResponseFlags, tt.details)
			}
		})
	}
}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopRWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopRWC) Close() error                { return nil }

func readResponseHead(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v (got %q)", err, head.String()+line)
		}
		if line == "\r\n" {
			return head.String()
		}
		head.WriteString(line)
	}
}
