package config

import (
	"reflect"
	"testing"
)

func TestZoneAwareDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	l := c.Clusters[0].CommonLBConfig
	if l.HealthyPanicThreshold == nil || *l.HealthyPanicThreshold != 50 {
		t.Errorf("healthy_panic_threshold = %v, want 50", l.HealthyPanicThreshold)
	}
	z := l.ZoneAwareLBConfig
	if z.RoutingEnabled == nil || *z.RoutingEnabled != 100 {
		t.Errorf("routing_enabled = %v, want 100", z.RoutingEnabled)
	}
	if z.MinClusterSize == nil || *z.MinClusterSize != 6 {
		t.Errorf("min_cluster_size = %v, want 6", z.MinClusterSize)
	}
	if z.FailTrafficOnPanic {
		t.Error("fail_traffic_on_panic defaults to true, want false")
	}
	if c.ClusterManager.LocalClusterName != "" {
		t.Errorf("local_cluster_name = %q, want empty", c.ClusterManager.LocalClusterName)
	}
}

func TestZoneAwareParse(t *testing.T) {
	c := mustParse(t, "node: {zone: us-east-1a}\ncluster_manager: {local_cluster_name: self}\n"+edit(t,
		"  - name: c\n", `  - name: self
    endpoints: [{address: 127.0.0.1:9000, zone: us-east-1a}, {address: 127.0.0.1:9001, zone: us-east-1b}]
  - name: c
    common_lb_config:
      zone_aware_lb_config: {routing_enabled: 12.5, min_cluster_size: 0, fail_traffic_on_panic: true}
`))
	if c.Node.Zone != "us-east-1a" || c.ClusterManager.LocalClusterName != "self" {
		t.Errorf("node.zone, local_cluster_name = %q, %q", c.Node.Zone, c.ClusterManager.LocalClusterName)
	}
	got := c.Clusters[1].CommonLBConfig.ZoneAwareLBConfig
	want := ZoneAwareLBConfig{RoutingEnabled: ptr(12.5), MinClusterSize: ptr(0), FailTrafficOnPanic: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("zone_aware_lb_config = %+v, want %+v", got, want)
	}
	// The local cluster keeps the defaults.
	if z := c.Clusters[0].CommonLBConfig.ZoneAwareLBConfig; *z.RoutingEnabled != 100 || *z.MinClusterSize != 6 {
		t.Errorf("local cluster's zone_aware_lb_config = %+v, want defaults", z)
	}
}

func TestZoneAwareErrors(t *testing.T) {
	zone := func(fields string) string {
		return edit(t, "  - name: c\n", "  - name: c\n    common_lb_config: {zone_aware_lb_config: {"+fields+"}}\n")
	}
	const zp = "clusters[0].common_lb_config.zone_aware_lb_config"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"routing_enabled above 100", zone("routing_enabled: 101"),
			[]string{"test.yaml:13:64: " + zp + ".routing_enabled: must be a percentage from 0 to 100, got 101"}},
		{"routing_enabled negative", zone("routing_enabled: -0.5"),
			[]string{"test.yaml:13:64: " + zp + ".routing_enabled: must be a percentage from 0 to 100, got -0.5"}},
		{"min_cluster_size negative", zone("min_cluster_size: -1"),
			[]string{"test.yaml:13:65: " + zp + ".min_cluster_size: must not be negative, got -1"}},
		{"min_cluster_size not a number", zone("min_cluster_size: six"),
			[]string{`test.yaml:13:65: ` + zp + `.min_cluster_size: expected an integer, got "six"`}},
		{"fail_traffic_on_panic not a bool", zone("fail_traffic_on_panic: maybe"),
			[]string{`test.yaml:13:70: ` + zp + `.fail_traffic_on_panic: expected true or false, got "maybe"`}},
		{"unknown field", zone("force_local_zone: true"),
			[]string{`test.yaml:13:47: ` + zp + `: unknown field "force_local_zone"; allowed: fail_traffic_on_panic, min_cluster_size, routing_enabled`}},
		{"unknown local cluster", "cluster_manager: {local_cluster_name: self}\n" + minimal,
			[]string{`test.yaml:1:39: cluster_manager.local_cluster_name: unknown cluster "self"; known clusters: c`}},
		{"unknown cluster_manager field", "cluster_manager: {local_cluster: c}\n" + minimal,
			[]string{`test.yaml:1:19: cluster_manager: unknown field "local_cluster"; allowed: local_cluster_name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErrs(t, tt.src, tt.want) })
	}
}
