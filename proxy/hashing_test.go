package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hashingConfig routes /h to a consistent-hash cluster of three upstreams
// ({{POLICY}}: ring_hash or maglev) hashed on x-user, then the XFF client
// address; /c hashes on a generated cookie; /rr has the same cookie policy
// in front of a round_robin cluster, which must not set it. The listener
// trusts one X-Forwarded-For hop, so the client address is the XFF entry.
var hashingConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: []`, `use_remote_address: false`) + `
          - match: {prefix: /h}
            route:
              cluster: hashed
              retry_policy: {retry_on: [connect-failure], num_retries: 2, retry_back_off: {base_interval: 1ms}}
              hash_policy:
                - header: {header_name: x-user}
                  terminal: true
                - connection_properties: {source_ip: true}
          - match: {prefix: /c}
            route:
              cluster: hashed
              hash_policy: [{cookie: {name: hw, ttl: 60s, path: /c}}]
          - match: {prefix: /rr}
            route:
              cluster: rr
              hash_policy: [{cookie: {name: hw, ttl: 60s}}]
clusters:
  - name: hashed
    lb_policy: {{POLICY}}
    endpoints: [{address: "{{A}}"}, {address: "{{B}}"}, {address: "{{C}}"}]
  - name: rr
    endpoints: [{address: "{{A}}"}]
`

func TestHashPolicyRouting(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			a, b, c := upstream(t, echoHandler("a")), upstream(t, echoHandler("b")), upstream(t, echoHandler("c"))
			h := startProxy(t, hashingConfig, "{{POLICY}}", policy, "{{A}}", a, "{{B}}", b, "{{C}}", c).with(t)
			send := func(path string, hdr ...string) (*http.Response, string) {
				t.Helper()
				res, body := h.get(h.url("ingress", path), hdr...)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: status %d: %q", path, res.StatusCode, body)
				}
				return res, res.Header.Get("X-Upstream")
			}

			// Each key sticks to one upstream; the keys spread over all three.
			byUser := map[string]string{}
			seen := map[string]int{}
			for i := range 60 {
				user := fmt.Sprintf("user-%d", i)
				_, up := send("/h", "X-User", user)
				byUser[user] = up
				seen[up]++
			}
			for i := range 60 {
				user := fmt.Sprintf("user-%d", i)
				if _, up := send("/h", "X-User", user); up != byUser[user] {
					t.Fatalf("%s went to %s, then to %s", user, byUser[user], up)
				}
			}
			if len(seen) != 3 {
				t.Errorf("60 keys reached %d upstreams (%v), want all 3", len(seen), seen)
			}

			// Without x-user the client address from X-Forwarded-For decides.
			byClient := map[string]string{}
			clients := map[string]bool{}
			for i := range 30 {
				ip := fmt.Sprintf("198.51.100.%d", i+1)
				_, up := send("/h", "X-Forwarded-For", ip)
				byClient[ip] = up
				clients[up] = true
				if _, again := send("/h", "X-Forwarded-For", "10.9.9.9, "+ip); again != up {
					t.Fatalf("client %s went to %s, then to %s", ip, up, again)
				}
			}
			if len(clients) < 2 {
				t.Errorf("30 client addresses all went to %v", clients)
			}

			// The cookie is generated once, then the request sticks to it.
			res, first := send("/c")
			set := res.Header.Get("Set-Cookie")
			if !strings.HasPrefix(set, `hw="`) || !strings.HasSuffix(set, `"; Max-Age=60; Path=/c; HttpOnly`) {
				t.Fatalf("Set-Cookie = %q, want hw=\"<hex>\"; Max-Age=60; Path=/c; HttpOnly", set)
			}
			value := strings.TrimSuffix(strings.TrimPrefix(set, `hw="`), `"; Max-Age=60; Path=/c; HttpOnly`)
			for range 5 {
				res, up := send("/c", "Cookie", `hw="`+value+`"`)
				if up != first || res.Header.Get("Set-Cookie") != "" {
					t.Fatalf("with the cookie: upstream %s (first %s), Set-Cookie %q", up, first, res.Header.Get("Set-Cookie"))
				}
			}
			if res, _ := send("/rr"); res.Header.Get("Set-Cookie") != "" {
				t.Errorf("round_robin cluster got Set-Cookie %q from a hash policy it ignores", res.Header.Get("Set-Cookie"))
			}
		})
	}
}

// TestHashRetryMovesOnlyDeadKeys stops one of three upstreams (its port
// then refuses connections): the keys that were on it are retried on
// another host, the same one for a key every time, and every other key
// stays where it was.
func TestHashRetryMovesOnlyDeadKeys(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			a, b := upstream(t, echoHandler("a")), upstream(t, echoHandler("b"))
			srvC := httptest.NewServer(echoHandler("c"))
			t.Cleanup(srvC.Close)
			h := startProxy(t, hashingConfig, "{{POLICY}}", policy, "{{A}}", a, "{{B}}", b, "{{C}}", srvC.Listener.Addr().String()).with(t)
			route := func(user string) string {
				t.Helper()
				res, body := h.get(h.url("ingress", "/h"), "X-User", user)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d: %q", user, res.StatusCode, body)
				}
				return res.Header.Get("X-Upstream")
			}
			const keys = 60
			before := map[string]string{}
			onC := 0
			for i := range keys {
				user := fmt.Sprintf("user-%d", i)
				if before[user] = route(user); before[user] == "c" {
					onC++
				}
			}
			if onC == 0 || onC == keys {
				t.Fatalf("%d of %d keys on c; the test needs some on c and some elsewhere", onC, keys)
			}
			srvC.Close()
			after := map[string]string{}
			for round := range 2 {
				for i := range keys {
					user := fmt.Sprintf("user-%d", i)
					up := route(user)
					switch {
					case up == "c":
						t.Fatalf("%s reached the stopped upstream", user)
					case before[user] != "c" && up != before[user]:
						t.Fatalf("%s moved from %s to %s although %s is up", user, before[user], up, before[user])
					case round == 1 && up != after[user]:
						t.Fatalf("%s was retried on %s, then on %s", user, after[user], up)
					}
					after[user] = up
				}
			}
		})
	}
}
