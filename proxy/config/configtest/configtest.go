// Package configtest builds proxy configurations for the tests of the
// packages that consume them (cluster, admin, listener), so that each
// need not write a listener it does not test.
package configtest

import (
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// listener is the smallest valid listeners section: one listener on an
// ephemeral port whose one route answers 200 itself, so that the clusters
// beside it need no route pointing at them.
const listener = `listeners: [{name: l, address: "127.0.0.1:0", stat_prefix: l, virtual_hosts: [{name: vh, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}]
`

// WithClusters is a configuration file of that listener and the given
// clusters section, the YAML list items below "clusters:" starting on the
// file's third line.
func WithClusters(clusters string) string {
	return listener + "clusters:\n" + clusters
}

// ParseClusters parses WithClusters(clusters) as test.yaml, with defaults
// applied, failing t on error.
func ParseClusters(t testing.TB, clusters string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(WithClusters(clusters)), "test.yaml")
	if err != nil {
		t.Fatalf("configtest: %v", err)
	}
	return cfg
}
