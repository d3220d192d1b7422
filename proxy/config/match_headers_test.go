package config

import (
	"strings"
	"testing"
)

// TestMatchPseudoHeaders: a route may match on the pseudo-headers the
// router understands (as Envoy's header matchers can); any other name that
// starts with ':' is an error that lists them.
func TestMatchPseudoHeaders(t *testing.T) {
	base := `listeners:
  - name: in
    address: 127.0.0.1:10000
    stat_prefix: in
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match:
              prefix: /
              headers: [{name: "NAME", exact_match: GET}]
            route: {cluster: c}
clusters:
  - name: c
    endpoints: [{address: 127.0.0.1:8080}]
`
	for _, name := range []string{":method", ":path", ":authority", ":scheme", ":Method"} {
		if _, err := Parse([]byte(strings.Replace(base, "NAME", name, 1)), "test.yaml"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := Parse([]byte(strings.Replace(base, "NAME", ":status", 1)), "test.yaml")
	want := `test.yaml:11:32: listeners[0].virtual_hosts[0].routes[0].match.headers[0].name: unknown pseudo-header ":status"; allowed: :authority, :method, :path, :scheme`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
