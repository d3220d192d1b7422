package config

import "strings"

// UpgradeConfig allows or refuses one protocol upgrade, as Envoy's
// HttpConnectionManager.UpgradeConfig (on a listener) and
// RouteAction.UpgradeConfig (on a route). An upgrade that is not allowed
// is not refused: its Upgrade and Connection headers are stripped and the
// request goes upstream as a plain HTTP/1.1 request.
type UpgradeConfig struct {
	// UpgradeType is the Upgrade header value it applies to, compared
	// case-insensitively, such as "websocket". Required. "h2c" and
	// "CONNECT" cannot be configured.
	UpgradeType string `yaml:"upgrade_type"`
	// Enabled allows the upgrade (true) or refuses it (false). Default
	// true.
	Enabled *bool `yaml:"enabled"`
}

// DefaultUpgradeType is the upgrade a listener allows when it has no
// upgrade_configs: WebSocket, which hopwatch has always tunnelled.
const DefaultUpgradeType = "websocket"

// UpgradeAllowed decides whether a request that asks to upgrade to
// upgradeType may, with Envoy's precedence: an entry on the route wins
// (enabled or not); otherwise the listener must list the type as enabled.
// Types compare case-insensitively; an entry without Enabled is enabled.
func UpgradeAllowed(listener, route []UpgradeConfig, upgradeType string) bool {
	if u := findUpgrade(route, upgradeType); u != nil {
		return u.Enabled == nil || *u.Enabled
	}
	u := findUpgrade(listener, upgradeType)
	return u != nil && (u.Enabled == nil || *u.Enabled)
}

func findUpgrade(list []UpgradeConfig, upgradeType string) *UpgradeConfig {
	for i := range list {
		if strings.EqualFold(list[i].UpgradeType, upgradeType) {
			return &list[i]
		}
	}
	return nil
}

// applyUpgradeDefaults allows WebSocket on a listener without
// upgrade_configs (an explicit empty list allows nothing), and enables
// every entry that does not say.
func (l *Listener) applyUpgradeDefaults(explicit func(any) bool) {
	if l.UpgradeConfigs == nil && !explicit(&l.UpgradeConfigs) {
		l.UpgradeConfigs = []UpgradeConfig{{UpgradeType: DefaultUpgradeType}}
	}
	enableUnset(l.UpgradeConfigs)
	for i := range l.VirtualHosts {
		for j := range l.VirtualHosts[i].Routes {
			if a := l.VirtualHosts[i].Routes[j].Route; a != nil {
				enableUnset(a.UpgradeConfigs)
			}
		}
	}
}

func enableUnset(list []UpgradeConfig) {
	for i := range list {
		setDefault(&list[i].Enabled, true)
	}
}

// listenerUpgrades checks the listener's upgrade_configs and every
// route's.
func (v *validator) listenerUpgrades(lp string, l *Listener) {
	v.upgradeConfigs(fieldPath(lp, "upgrade_configs"), l.UpgradeConfigs)
	for i := range l.VirtualHosts {
		vp := indexPath(fieldPath(lp, "virtual_hosts"), i)
		for j := range l.VirtualHosts[i].Routes {
			if a := l.VirtualHosts[i].Routes[j].Route; a != nil {
				v.upgradeConfigs(fieldPath(indexPath(fieldPath(vp, "routes"), j), "route.upgrade_configs"), a.UpgradeConfigs)
			}
		}
	}
}

func (v *validator) upgradeConfigs(path string, list []UpgradeConfig) {
	seen := map[string]string{}
	for i := range list {
		ip := indexPath(path, i)
		tp := fieldPath(ip, "upgrade_type")
		typ := list[i].UpgradeType
		switch {
		case typ == "":
			v.errorf(tp, "required: the Upgrade header value to allow or refuse, such as %q", DefaultUpgradeType)
			continue
		case !isUpgradeToken(typ):
			v.errorf(tp, "%q is not an HTTP token (an Upgrade protocol name such as %q, with no spaces, commas or separators)", typ, DefaultUpgradeType)
			continue
		case strings.EqualFold(typ, "h2c"):
			v.errorf(tp, "h2c cannot be configured: after the 101 the client would speak HTTP/2 to the upstream through a raw tunnel, "+
				"past route matching, deny rules and header rules (h2c request smuggling). hopwatch strips Upgrade: h2c and HTTP2-Settings from every request; "+
				"to serve HTTP/2, list http2 in the listener's protocols (h2c with prior knowledge, or ALPN h2 over TLS)")
			continue
		case strings.EqualFold(typ, "CONNECT"):
			v.errorf(tp, "CONNECT is not supported: hopwatch does not terminate CONNECT tunnels, and answers every CONNECT request with 403")
			continue
		}
		if d := editDistance(strings.ToLower(typ), DefaultUpgradeType); d > 0 && d < 3 {
			v.errorf(tp, "unknown upgrade type %q (did you mean %q?)", typ, DefaultUpgradeType)
			continue
		}
		v.unique(seen, strings.ToLower(typ), tp, "upgrade_type")
	}
}

// isUpgradeToken reports whether s is a protocol name an Upgrade header can
// carry: an RFC 9110 token, optionally with a "/version" (RFC 9110 §7.8).
func isUpgradeToken(s string) bool {
	name, version, hasVersion := strings.Cut(s, "/")
	if hasVersion && (version == "" || !isToken(version)) {
		return false
	}
	return isToken(name)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !isTokenRune(r) {
			return false
		}
	}
	return true
}
