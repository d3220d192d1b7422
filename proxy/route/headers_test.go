package route

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func TestHeaderMutationVariables(t *testing.T) {
	vars := &Vars{
		RemoteAddr:      "203.0.113.7:51234",
		UpstreamCluster: "backend",
		Request:         http.Header{"X-Request-Id": {"abc-123", "second"}, "User-Agent": {"curl/8"}},
	}
	tests := []struct {
		value string
		vars  *Vars
		want  string // "" means not added
	}{
		{"plain", vars, "plain"},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", vars, "203.0.113.7"},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", &Vars{RemoteAddr: "[2001:db8::1]:443"}, "2001:db8::1"},
		{"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", &Vars{RemoteAddr: "/tmp/sock"}, "/tmp/sock"},
		{"%REQ(x-request-id)%", vars, "abc-123"},
		{"id=%REQ(X-REQUEST-ID)%;ua=%REQ(user-agent)%", vars, "id=abc-123;ua=curl/8"},
		{"%REQ(x-missing)%", vars, ""},
		{"[%REQ(x-missing)%]", vars, "[]"},
		{"%UPSTREAM_CLUSTER%", vars, "backend"},
		{"via %HOSTNAME%", vars, "via node-1"},
		{"100%%", vars, "100%"},
		{"%%HOSTNAME%%", vars, "%HOSTNAME%"},
		{"%UPSTREAM_CLUSTER%", nil, ""},
		{"%REQ(a)%-%UPSTREAM_CLUSTER%-%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", nil, "--"},
		{"", vars, ""},
	}
	for _, tt := range tests {
		m, err := NewHeaderMutation(config.HeadersMutation{
			RequestHeadersToAdd:  []config.HeaderValueOption{{Key: "x-out", Value: tt.value}},
			ResponseHeadersToAdd: []config.HeaderValueOption{{Key: "x-out", Value: tt.value}},
		}, "node-1")
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		for _, apply := range []func(http.Header, *Vars){m.ApplyRequest, m.ApplyResponse} {
			h := http.Header{}
			apply(h, tt.vars)
			got, present := h["X-Out"]
			switch {
			case tt.want == "" && present:
				t.Errorf("%q: added %q, want nothing", tt.value, got)
			case tt.want != "" && !slices.Equal(got, []string{tt.want}):
				t.Errorf("%q: got %q, want %q", tt.value, got, tt.want)
			}
		}
	}
}

func TestHeaderMutationAppendRemove(t *testing.T) {
	m, err := NewHeaderMutation(config.HeadersMutation{
		RequestHeadersToAdd: []config.HeaderValueOption{
			{Key: "x-append", Value: "new"}, // default append
			{Key: "x-append-explicit", Value: "new", Append: bp(true)},
			{Key: "x-replace", Value: "new", Append: bp(false)},
			{Key: "x-replace-empty", Value: "%REQ(nope)%", Append: bp(false)}, // empty: nothing happens
			{Key: "x-removed", Value: "re-added"},                             // removal runs first
		},
		RequestHeadersToRemove:  []string{"x-removed", "X-SECRET"},
		ResponseHeadersToAdd:    []config.HeaderValueOption{{Key: "server", Value: "hopwatch", Append: bp(false)}},
		ResponseHeadersToRemove: []string{"x-powered-by"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{
		"X-Append":          {"old"},
		"X-Append-Explicit": {"old"},
		"X-Replace":         {"old1", "old2"},
		"X-Replace-Empty":   {"kept"},
		"X-Removed":         {"gone"},
		"X-Secret":          {"s"},
		"X-Other":           {"o"},
	}
	m.ApplyRequest(h, &Vars{Request: h})
	want := http.Header{
		"X-Append":          {"old", "new"},
		"X-Append-Explicit": {"old", "new"},
		"X-Replace":         {"new"},
		"X-Replace-Empty":   {"kept"},
		"X-Removed":         {"re-added"},
		"X-Other":           {"o"},
	}
	if !equalHeader(h, want) {
		t.Errorf("request headers = %v, want %v", h, want)
	}
	resp := http.Header{"Server": {"upstream"}, "X-Powered-By": {"php"}}
	m.ApplyResponse(resp, nil)
	if !equalHeader(resp, http.Header{"Server": {"hopwatch"}}) {
		t.Errorf("response headers = %v", resp)
	}
	// Nil mutation and nil headers are no-ops.
	var nilM *HeaderMutation
	nilM.ApplyRequest(h, nil)
	nilM.ApplyResponse(h, nil)
	m.ApplyRequest(nil, nil)
	if empty, err := NewHeaderMutation(config.HeadersMutation{}, "x"); empty != nil || err != nil {
		t.Errorf("empty mutation = %v, %v; want nil, nil", empty, err)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestHeaderMutationErrors(t *testing.T) {
	add := func(key, value string) config.HeadersMutation {
		return config.HeadersMutation{RequestHeadersToAdd: []config.HeaderValueOption{{Key: "x-ok", Value: "1"}, {Key: key, Value: value}}}
	}
	tests := []struct {
		name string
		m    config.HeadersMutation
		want string
	}{
		{"unterminated", add("x-a", "50%"), "request_headers_to_add[1].value: unterminated variable at byte 2"},
		{"unknown variable", add("x-a", "%START_TIME%"), "unknown variable %START_TIME%"},
		{"req without name", add("x-a", "%REQ()%"), `"" is not a valid header name`},
		{"req bad name", add("x-a", "%REQ(a b)%"), "not a valid header name"},
		{"req truncation unsupported", add("x-a", "%REQ(a):10%"), "unknown variable %REQ(a):10%"},
		{"lower-case variable", add("x-a", "%hostname%"), "unknown variable %hostname%"},
		{"crlf", add("x-a", "a\r\nInjected: 1"), "contains CR, LF or NUL"},
		{"empty key", add("", "v"), "request_headers_to_add[1].key: header name is required"},
		{"pseudo key", add(":authority", "v"), "pseudo-header"},
		{"host key", add("HOST", "v"), "host cannot be changed"},
		{"bad key", add("x a", "v"), "not a valid header name"},
		{"response add", config.HeadersMutation{ResponseHeadersToAdd: []config.HeaderValueOption{{Key: "x", Value: "%"}}}, "response_headers_to_add[0].value: unterminated"},
		{"request remove", config.HeadersMutation{RequestHeadersToRemove: []string{"ok", ":path"}}, "request_headers_to_remove[1]: pseudo-header"},
		{"response remove", config.HeadersMutation{ResponseHeadersToRemove: []string{"bad header"}}, "response_headers_to_remove[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHeaderMutation(tt.m, "h")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// FuzzHeaderFormat checks that any header value either compiles or is
// rejected with an error, and that a value without '%' expands to itself.
func FuzzHeaderFormat(f *testing.F) {
	for _, s := range []string{"plain", "%HOSTNAME%", "%REQ(x-a)%", "%%", "%", "%REQ(%", "a%UPSTREAM_CLUSTER%b%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "%REQ()%", "%%%"} {
		f.Add(s)
	}
	vars := &Vars{RemoteAddr: "127.0.0.1:1", UpstreamCluster: "c", Request: http.Header{"X-A": {"v"}}}
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := parseFormat(s, "host")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		got := fm.eval(vars)
		if !strings.Contains(s, "%") && got != s {
			t.Fatalf("literal %q expanded to %q", s, got)
		}
	})
}
