package proxy

import (
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/tracing"
)

// TestTracingConfigFromNode: the node's identity fills what the tracing
// section and the environment leave unset, and never overrides either.
func TestTracingConfigFromNode(t *testing.T) {
	node := config.Node{ID: "edge-1", Cluster: "edge", Zone: "zone-a"}
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tc := range []struct {
		name                        string
		node                        config.Node
		section                     *tracing.Config
		env                         map[string]string
		on                          bool
		service, instance, wantZone string
	}{
		{"off without a section", node, nil, nil, false, "", "", ""},
		{"node fills the gaps", node, &tracing.Config{}, nil, true, "edge", "edge-1", "zone-a"},
		{"node.id when no node.cluster", config.Node{ID: "n"}, &tracing.Config{}, nil, true, "n", "n", ""},
		{"the section wins", node, &tracing.Config{ServiceName: "s", InstanceID: "i", Zone: "z"}, nil, true, "s", "i", "z"},
		{"OTEL_SERVICE_NAME wins over the node", node, &tracing.Config{}, map[string]string{"OTEL_SERVICE_NAME": "from-env"}, true, "", "edge-1", "zone-a"},
		{"OTEL_RESOURCE_ATTRIBUTES wins over the node", node, &tracing.Config{},
			map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=a,service.instance.id=b"}, true, "", "", "zone-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, on := tracingConfig(&config.Config{Node: tc.node, Tracing: tc.section}, env(tc.env))
			if on != tc.on || got.ServiceName != tc.service || got.InstanceID != tc.instance || got.Zone != tc.wantZone {
				t.Errorf("got %v service %q instance %q zone %q; want %v %q %q %q", on, got.ServiceName, got.InstanceID, got.Zone,
					tc.on, tc.service, tc.instance, tc.wantZone)
			}
		})
	}
}
