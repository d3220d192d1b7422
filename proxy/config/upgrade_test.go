package config

import (
	"testing"
)

func TestUpgradeDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	l := c.Listeners[0]
	if len(l.UpgradeConfigs) != 1 || l.UpgradeConfigs[0].UpgradeType != "websocket" || !*l.UpgradeConfigs[0].Enabled {
		t.Fatalf("default upgrade_configs = %+v, want websocket enabled", l.UpgradeConfigs)
	}
	if r := l.VirtualHosts[0].Routes[0].Route; r.UpgradeConfigs != nil {
		t.Errorf("route upgrade_configs = %+v, want none", r.UpgradeConfigs)
	}

	// An explicit empty list allows nothing; entries are enabled unless
	// they say otherwise, on the listener and on routes.
	c = mustParse(t, edit(t, "stat_prefix: l\n", "stat_prefix: l\n    upgrade_configs: []\n"))
	if got := c.Listeners[0].UpgradeConfigs; got == nil || len(got) != 0 {
		t.Errorf("upgrade_configs: [] gave %+v, want an empty list", got)
	}
	c = mustParse(t, edit(t,
		"stat_prefix: l\n", "stat_prefix: l\n    upgrade_configs: [{upgrade_type: spdy/3.1}, {upgrade_type: WebSocket, enabled: false}]\n",
		"route: {cluster: c}", "route: {cluster: c, upgrade_configs: [{upgrade_type: websocket}]}"))
	ls := c.Listeners[0].UpgradeConfigs
	if len(ls) != 2 || !*ls[0].Enabled || *ls[1].Enabled {
		t.Errorf("listener upgrade_configs = %+v", ls)
	}
	if rs := c.Listeners[0].VirtualHosts[0].Routes[0].Route.UpgradeConfigs; len(rs) != 1 || !*rs[0].Enabled {
		t.Errorf("route upgrade_configs = %+v", rs)
	}
	out, _ := roundTrip(t, c)
	if len(out) == 0 {
		t.Fatal("empty dump")
	}
}

// TestUpgradeAllowed is Envoy's precedence table: a route's entry wins
// either way; without one, the listener must list the type as enabled.
func TestUpgradeAllowed(t *testing.T) {
	yes, no := true, false
	on := func(typ string) UpgradeConfig { return UpgradeConfig{UpgradeType: typ, Enabled: &yes} }
	off := func(typ string) UpgradeConfig { return UpgradeConfig{UpgradeType: typ, Enabled: &no} }
	tests := []struct {
		name            string
		listener, route []UpgradeConfig
		typ             string
		want            bool
	}{
		{"listener allows, route silent", []UpgradeConfig{on("websocket")}, nil, "websocket", true},
		{"case-insensitive", []UpgradeConfig{on("websocket")}, nil, "WebSocket", true},
		{"listener allows, route disables", []UpgradeConfig{on("websocket")}, []UpgradeConfig{off("WEBSOCKET")}, "websocket", false},
		{"listener disables, route enables", []UpgradeConfig{off("websocket")}, []UpgradeConfig{on("websocket")}, "websocket", true},
		{"listener silent, route enables", nil, []UpgradeConfig{on("websocket")}, "websocket", true},
		{"listener disables, route silent", []UpgradeConfig{off("websocket")}, nil, "websocket", false},
		{"type not listed", []UpgradeConfig{on("websocket")}, []UpgradeConfig{on("spdy/3.1")}, "h2c", false},
		{"a list of protocols matches no type", []UpgradeConfig{on("websocket")}, nil, "websocket, h2c", false},
		{"nothing configured", nil, nil, "websocket", false},
	}
	for _, tt := range tests {
		if got := UpgradeAllowed(tt.listener, tt.route, tt.typ); got != tt.want {
			t.Errorf("%s: UpgradeAllowed(%q) = %v, want %v", tt.name, tt.typ, got, tt.want)
		}
	}
}

func TestUpgradeErrors(t *testing.T) {
	// The listener's list goes on line 5, column 5; a route's on line 11.
	listener := func(list string) string {
		return edit(t, "stat_prefix: l\n", "stat_prefix: l\n    upgrade_configs: "+list+"\n")
	}
	route := func(list string) string {
		return edit(t, "route: {cluster: c}", "route: {cluster: c, upgrade_configs: "+list+"}")
	}
	const lp = "listeners[0].upgrade_configs"
	const rp = "listeners[0].virtual_hosts[0].routes[0].route.upgrade_configs"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"h2c", listener("[{upgrade_type: h2c}]"), []string{
			`test.yaml:5:38: ` + lp + `[0].upgrade_type: h2c cannot be configured: after the 101 the client would speak HTTP/2 to the upstream through a raw tunnel, ` +
				`past route matching, deny rules and header rules (h2c request smuggling). hopwatch strips Upgrade: h2c and HTTP2-Settings from every request; ` +
				`to serve HTTP/2, list http2 in the listener's protocols (h2c with prior knowledge, or ALPN h2 over TLS)`}},
		{"H2C on a route, any case", route("[{upgrade_type: H2C, enabled: true}]"), []string{
			`test.yaml:10:66: ` + rp + `[0].upgrade_type: h2c cannot be configured: after the 101 the client would speak HTTP/2 to the upstream through a raw tunnel, ` +
				`past route matching, deny rules and header rules (h2c request smuggling). hopwatch strips Upgrade: h2c and HTTP2-Settings from every request; ` +
				`to serve HTTP/2, list http2 in the listener's protocols (h2c with prior knowledge, or ALPN h2 over TLS)`}},
		{"CONNECT", listener("[{upgrade_type: websocket}, {upgrade_type: CONNECT}]"), []string{
			`test.yaml:5:65: ` + lp + `[1].upgrade_type: CONNECT is not supported: hopwatch does not terminate CONNECT tunnels, and answers every CONNECT request with 403`}},
		{"connect on a route", route("[{upgrade_type: connect}]"), []string{
			`test.yaml:10:66: ` + rp + `[0].upgrade_type: CONNECT is not supported: hopwatch does not terminate CONNECT tunnels, and answers every CONNECT request with 403`}},
		{"typo", listener("[{upgrade_type: websockt}]"), []string{
			`test.yaml:5:38: ` + lp + `[0].upgrade_type: unknown upgrade type "websockt" (did you mean "websocket"?)`}},
		{"plural", route("[{upgrade_type: WebSockets}]"), []string{
			`test.yaml:10:66: ` + rp + `[0].upgrade_type: unknown upgrade type "WebSockets" (did you mean "websocket"?)`}},
		{"missing type", listener("[{enabled: false}]"), []string{
			`test.yaml:5:23: ` + lp + `[0].upgrade_type: required: the Upgrade header value to allow or refuse, such as "websocket"`}},
		{"not a token", listener(`[{upgrade_type: "websocket, h2c"}]`), []string{
			`test.yaml:5:38: ` + lp + `[0].upgrade_type: "websocket, h2c" is not an HTTP token (an Upgrade protocol name such as "websocket", with no spaces, commas or separators)`}},
		{"empty version", listener(`[{upgrade_type: "foo/"}]`), []string{
			`test.yaml:5:38: ` + lp + `[0].upgrade_type: "foo/" is not an HTTP token (an Upgrade protocol name such as "websocket", with no spaces, commas or separators)`}},
		{"duplicate, any case", listener("[{upgrade_type: websocket}, {upgrade_type: WebSocket, enabled: false}]"), []string{
			`test.yaml:5:65: ` + lp + `[1].upgrade_type: duplicate upgrade_type "websocket" (also used by ` + lp + `[0])`}},
		{"unknown field", listener("[{upgrade_type: websocket, filters: []}]"), []string{
			`test.yaml:5:49: ` + lp + `[0]: unknown field "filters"; allowed: enabled, upgrade_type`}},
		{"not a list", listener("websocket"), []string{
			`test.yaml:5:22: ` + lp + `: expected a list, got "websocket"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, tt.src, tt.want) })
	}
	for _, ok := range []string{
		listener("[{upgrade_type: websocket}, {upgrade_type: spdy/3.1}, {upgrade_type: foo, enabled: false}]"),
		route("[{upgrade_type: websocket, enabled: false}]"),
	} {
		checkErrs(t, ok, nil)
	}
}
