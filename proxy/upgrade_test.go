package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// upgradeProxyConfig is simpleConfig with a route before the others that
// disables websocket on /nows; the rest allow what the listener allows
// (the default: websocket only).
var upgradeProxyConfig = strings.Replace(simpleConfig, "          - name: to_up\n",
	"          - match: {prefix: /nows}\n"+
		"            route: {cluster: up, upgrade_configs: [{upgrade_type: websocket, enabled: false}]}\n"+
		"          - name: to_up\n", 1)

// arrival is what a raw origin received on one connection: the request
// head byte for byte, and every byte that followed until the connection
// ended.
type arrival struct {
	head, rest string
}

// switchingOrigin is the origin an attacker hopes for: it answers 101 to
// any request that carries an Upgrade header and then echoes the tunnel;
// anything else gets "200 plain". It records what arrived on each
// connection once the connection ends.
func switchingOrigin(t *testing.T) (string, <-chan arrival) {
	t.Helper()
	arrivals := make(chan arrival, 16)
	addr := rawOrigin(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil || line == "\r\n" {
				break
			}
		}
		var rest bytes.Buffer
		if strings.Contains(strings.ToLower(head.String()), "\r\nupgrade:") {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			_, _ = io.Copy(io.MultiWriter(c, &rest), br)
		} else {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain")
			_, _ = io.Copy(&rest, br)
		}
		arrivals <- arrival{head: head.String(), rest: rest.String()}
	})
	return addr, arrivals
}

func nextArrival(t *testing.T, arrivals <-chan arrival) arrival {
	t.Helper()
	select {
	case a := <-arrivals:
		return a
	case <-time.After(15 * time.Second):
		t.Fatal("the origin recorded no connection")
		return arrival{}
	}
}

// TestUpgradeNotAllowedIsStripped: an Upgrade the route does not allow
// reaches the origin as a plain request, with none of the upgrade's
// headers, so an origin that would switch never does, and bytes the client
// sends after the head are never tunnelled.
func TestUpgradeNotAllowedIsStripped(t *testing.T) {
	t.Parallel()
	up, arrivals := switchingOrigin(t)
	h := startProxy(t, upgradeProxyConfig, "{{UP}}", up, "{{PROTO}}", "http1")
	addr := h.srv.ListenerAddr("ingress").String()
	// The h2c smuggling attempt: after the head, the client sends the
	// HTTP/2 preface it would send after a 101.
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	tests := []struct {
		name, path, headers string
	}{
		{"h2c", "/", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"},
		{"H2C, settings not named", "/", "Connection: Upgrade\r\nUpgrade: H2C\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"},
		{"unknown type", "/", "Connection: Upgrade\r\nUpgrade: foo\r\n"},
		{"websocket on a route that disables it", "/nows", "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err := io.WriteString(c, "GET "+tc.path+" HTTP/1.1\r\nHost: a\r\n"+tc.headers+"\r\n"+preface); err != nil {
				t.Fatal(err)
			}
			res, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK || string(body) != "plain" {
				t.Errorf("client got %d %q, want the origin's plain 200", res.StatusCode, body)
			}
			a := nextArrival(t, arrivals)
			lower := strings.ToLower(a.head)
			for _, bad := range []string{"\r\nupgrade:", "\r\nhttp2-settings:", "upgrade\r\n", "upgrade,", "h2c", "foo"} {
				if strings.Contains(lower, bad) {
					t.Errorf("the origin received %q, which holds %q", a.head, bad)
				}
			}
			if !strings.HasPrefix(a.head, "GET "+tc.path+" HTTP/1.1\r\n") {
				t.Errorf("the origin received %q", a.head)
			}
			if a.rest != "" {
				t.Errorf("bytes past the request reached the origin: %q", a.rest)
			}
		})
	}
}

// TestWebSocketUpgradeAddsNothing: an allowed upgrade reaches the origin
// as the client sent it (plus the proxy's forwarding headers), with no
// User-Agent the client did not send, and the tunnel carries bytes both
// ways.
func TestWebSocketUpgradeAddsNothing(t *testing.T) {
	t.Parallel()
	up, arrivals := switchingOrigin(t)
	h := startProxy(t, upgradeProxyConfig, "{{UP}}", up, "{{PROTO}}", "http1")
	c, err := net.Dial("tcp", h.srv.ListenerAddr("ingress").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nframe1|"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("client got %d Upgrade %q, want 101 websocket", res.StatusCode, res.Header.Get("Upgrade"))
	}
	if _, err := io.WriteString(c, "frame2"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, len("frame1|frame2"))
	if _, err := io.ReadFull(br, echo); err != nil || string(echo) != "frame1|frame2" {
		t.Fatalf("echo %q, %v", echo, err)
	}
	_ = c.Close()
	a := nextArrival(t, arrivals)
	if strings.Contains(strings.ToLower(a.head), "user-agent") {
		t.Errorf("the origin received a User-Agent the client never sent: %q", a.head)
	}
	got := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSuffix(a.head, "\r\n\r\n"), "\r\n")[1:] {
		k, v, _ := strings.Cut(line, ": ")
		got[http.CanonicalHeaderKey(k)] = append(got[http.CanonicalHeaderKey(k)], v)
	}
	want := map[string]string{"Host": "a", "Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-Websocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-Websocket-Version": "13"}
	for k, v := range want {
		if vs := got[k]; len(vs) != 1 || vs[0] != v {
			t.Errorf("origin %s = %q, want %q (head %q)", k, vs, v, a.head)
		}
	}
	// Besides the client's headers, only the proxy's own forwarding
	// headers may appear.
	for k := range got {
		switch {
		case want[k] != "", k == "X-Forwarded-For", k == "X-Forwarded-Proto", k == "X-Forwarded-Host", k == "X-Request-Id", k == "X-Envoy-Internal":
		default:
			t.Errorf("the origin received %s: %q, which the client did not send", k, got[k])
		}
	}
	if a.rest != "frame1|frame2" {
		t.Errorf("tunnelled bytes at the origin = %q, want frame1|frame2", a.rest)
	}
	h.waitStat("http.ingress_http.downstream_cx_upgrades_active", 0)
	if got := h.stat("http.ingress_http.downstream_cx_upgrades_total"); got != 1 {
		t.Errorf("downstream_cx_upgrades_total = %d, want 1", got)
	}
}

// TestConnectRefused: CONNECT is answered 403 and the connection closed;
// nothing reaches the origin, neither the CONNECT nor the bytes meant for
// the tunnel, and the access log has a line for it.
func TestConnectRefused(t *testing.T) {
	t.Parallel()
	up, arrivals := switchingOrigin(t)
	h := startProxy(t, upgradeProxyConfig, "{{UP}}", up, "{{PROTO}}", "http1")
	got := rawExchange(t, h.srv.ListenerAddr("ingress").String(),
		"CONNECT "+up+" HTTP/1.1\r\nHost: "+up+"\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(got, "\r\nConnection: close\r\n") {
		t.Errorf("CONNECT answered %q, want 403 and Connection: close", got)
	}
	if n := strings.Count(got, "HTTP/1.1 "); n != 1 {
		t.Errorf("%d responses on the connection, want 1 (the tunnel bytes were read as a request): %q", n, got)
	}
	deadline := time.Now().Add(10 * time.Second)
	var line map[string]any
	for line == nil && time.Now().Before(deadline) {
		line = findLogLineBy(t, h.logPath, "method", http.MethodConnect)
		time.Sleep(20 * time.Millisecond)
	}
	if line == nil || line["response_code"] != float64(403) || line["response_code_details"] != "upgrade_failed" {
		t.Errorf("access log line = %v, want CONNECT 403 upgrade_failed", line)
	}
	select {
	case a := <-arrivals:
		t.Errorf("the origin was contacted: %q", a.head)
	case <-time.After(200 * time.Millisecond):
	}
}

// findLogLineBy returns the first access-log line whose field key is
// value, or nil.
func findLogLineBy(t *testing.T, path, key, value string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	for line := range bytes.Lines(b) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m[key] == value {
			return m
		}
	}
	return nil
}
