package connmgr

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// upgradeConfig has one route that allows only what the listener allows,
// one that disables websocket and one that enables foo. {{UPGRADES}} is
// the listener's upgrade_configs line.
const upgradeConfig = `
listeners:
  - name: l
    address: 127.0.0.1:0
    stat_prefix: l
    {{UPGRADES}}
    virtual_hosts:
      - name: vh
        domains: ["*"]
        routes:
          - match: {prefix: /nows}
            route: {cluster: up, upgrade_configs: [{upgrade_type: websocket, enabled: false}]}
          - match: {prefix: /foo}
            route: {cluster: up, upgrade_configs: [{upgrade_type: Foo}]}
          - match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`

// logged keeps the access-log entries of a test.
type logged struct{ infos []streaminfo.Info }

func (l *logged) Log(info *streaminfo.Info) { l.infos = append(l.infos, *info) }

// newUpgradeManager builds a connection manager from upgradeConfig, its
// cluster pointing at up.
func newUpgradeManager(t *testing.T, upgrades, up string) (*Manager, *logged) {
	t.Helper()
	src := strings.NewReplacer("{{UPGRADES}}", upgrades, "{{UP}}", up).Replace(upgradeConfig)
	log := &logged{}
	return newTestManager(t, src, log), log
}

// TestUpgradeDecision: an upgrade reaches the upstream only when the
// listener and route allow its type; anything else goes as a plain
// request with every trace of the upgrade removed.
func TestUpgradeDecision(t *testing.T) {
	seen := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		_, _ = w.Write([]byte("plain"))
	}))
	t.Cleanup(up.Close)
	addr := up.Listener.Addr().String()
	byDefault, _ := newUpgradeManager(t, "", addr)
	noneOnListener, _ := newUpgradeManager(t, "upgrade_configs: []", addr)

	upgrade := func(typ string) http.Header {
		return http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {typ}, "X-Kept": {"1"}}
	}
	tests := []struct {
		name    string
		m       *Manager
		path    string
		proto   int // minor version of HTTP/1
		header  http.Header
		forward string // the Upgrade value the upstream must see; "" for none
	}{
		{"websocket by default", byDefault, "/", 1, upgrade("websocket"), "websocket"},
		{"type matched case-insensitively", byDefault, "/", 1, upgrade("WebSocket"), "WebSocket"},
		{"h2c is never forwarded", byDefault, "/", 1, http.Header{
			"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQCAAAAAAIAAAAA"}, "X-Kept": {"1"},
		}, ""},
		{"HTTP2-Settings not named by Connection", byDefault, "/", 1, http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQCAAAAAAIAAAAA"}, "X-Kept": {"1"},
		}, ""},
		{"unknown type", byDefault, "/", 1, upgrade("foo"), ""},
		{"route enables foo", byDefault, "/foo", 1, upgrade("foo"), "foo"},
		{"route disables websocket", byDefault, "/nows", 1, upgrade("websocket"), ""},
		{"listener allows nothing", noneOnListener, "/", 1, upgrade("websocket"), ""},
		{"route enables over an empty listener", noneOnListener, "/foo", 1, upgrade("foo"), "foo"},
		{"HTTP/1.0 cannot upgrade", byDefault, "/", 0, upgrade("websocket"), ""},
		{"two Upgrade fields", byDefault, "/", 1, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket", "h2c"}, "X-Kept": {"1"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "http://a"+tt.path, nil)
			req.Proto, req.ProtoMinor = "HTTP/1."+string(rune('0'+tt.proto)), tt.proto
			req.Header = tt.header
			rec := httptest.NewRecorder()
			tt.m.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK || rec.Body.String() != "plain" {
				t.Fatalf("response %d %q, want the upstream's 200", rec.Code, rec.Body.String())
			}
			h := <-seen
			if h.Get("X-Kept") != "1" {
				t.Errorf("an end-to-end header was lost: %v", h)
			}
			if _, ok := h["Http2-Settings"]; ok {
				t.Errorf("HTTP2-Settings reached the upstream: %v", h)
			}
			if tt.forward == "" {
				if v, ok := h["Upgrade"]; ok {
					t.Errorf("Upgrade %q reached the upstream", v)
				}
				if v := h.Get("Connection"); strings.Contains(strings.ToLower(v), "upgrade") {
					t.Errorf("Connection %q reached the upstream", v)
				}
				return
			}
			if got := h.Values("Upgrade"); len(got) != 1 || got[0] != tt.forward {
				t.Errorf("upstream Upgrade = %q, want %q", got, tt.forward)
			}
			if got := h.Values("Connection"); len(got) != 1 || got[0] != "Upgrade" {
				t.Errorf("upstream Connection = %q, want exactly Upgrade", got)
			}
		})
	}
}

// TestConnectRefused: CONNECT gets 403 with Envoy's details, closes an
// HTTP/1 connection, is logged, and never reaches the upstream.
func TestConnectRefused(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("a CONNECT request reached the upstream")
	}))
	t.Cleanup(up.Close)
	m, log := newUpgradeManager(t, "", up.Listener.Addr().String())
	for _, major := range []int{1, 2} {
		req := httptest.NewRequest(http.MethodConnect, "http://a", nil)
		req.URL.Path, req.RequestURI = "", up.Listener.Addr().String()
		req.ProtoMajor = major
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("HTTP/%d CONNECT: status %d, want 403", major, rec.Code)
		}
		if got, want := rec.Header().Get("Connection"), map[int]string{1: "close", 2: ""}[major]; got != want {
			t.Errorf("HTTP/%d CONNECT: Connection %q, want %q", major, got, want)
		}
	}
	if len(log.infos) != 2 {
		t.Fatalf("%d access-log entries, want 2", len(log.infos))
	}
	for _, info := range log.infos {
		if info.ResponseCode != http.StatusForbidden || info.ResponseCodeDetails != "upgrade_failed" || info.Method != http.MethodConnect {
			t.Errorf("logged %s %d %q, want CONNECT 403 upgrade_failed", info.Method, info.ResponseCode, info.ResponseCodeDetails)
		}
	}
}
