package config

import (
	"reflect"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/lbpolicy"
)

// CommonLBConfig is Envoy's cluster.common_lb_config, flattened: Envoy's
// Percent messages are plain numbers here.
type CommonLBConfig struct {
	// HealthyPanicThreshold is the percentage of healthy hosts, 0–100,
	// below which the cluster balances over every host, healthy or not,
	// because sending everything to the few healthy ones would overload
	// them too. 0 disables panic mode. Default 50.
	HealthyPanicThreshold *float64 `yaml:"healthy_panic_threshold"`
	// ZoneAwareLBConfig tunes zone-aware routing, which needs node.zone and
	// cluster_manager.local_cluster_name.
	ZoneAwareLBConfig ZoneAwareLBConfig `yaml:"zone_aware_lb_config"`
}

// ZoneAwareLBConfig is Envoy's common_lb_config.zone_aware_lb_config.
type ZoneAwareLBConfig struct {
	// RoutingEnabled is the percentage of requests, 0–100, that zone-aware
	// routing applies to; the rest ignore zones. Default 100.
	RoutingEnabled *float64 `yaml:"routing_enabled"`
	// MinClusterSize is the smallest upstream cluster zone-aware routing is
	// attempted for. Default 6.
	MinClusterSize *int `yaml:"min_cluster_size"`
	// FailTrafficOnPanic fails requests instead of balancing over every host
	// when the cluster is in panic mode. Default false.
	FailTrafficOnPanic bool `yaml:"fail_traffic_on_panic"`
}

// ClusterManager is Envoy's cluster_manager settings that hopwatch uses.
type ClusterManager struct {
	// LocalClusterName names the cluster whose endpoints are this service's
	// own instances (this proxy among them). Zone-aware routing compares
	// how that cluster and each upstream cluster spread over zones.
	// Empty: no zone-aware routing.
	LocalClusterName string `yaml:"local_cluster_name"`
}

// Documented defaults of common_lb_config.
const (
	DefaultHealthyPanicThreshold = 50.0
	DefaultZoneRoutingEnabled    = 100.0
	DefaultZoneMinClusterSize    = 6
)

func (l *CommonLBConfig) applyDefaults() {
	setDefault(&l.HealthyPanicThreshold, DefaultHealthyPanicThreshold)
	z := &l.ZoneAwareLBConfig
	setDefault(&z.RoutingEnabled, DefaultZoneRoutingEnabled)
	setDefault(&z.MinClusterSize, DefaultZoneMinClusterSize)
}

func (v *validator) commonLBConfig(cp string, l *CommonLBConfig) {
	lp := fieldPath(cp, "common_lb_config")
	v.percent(fieldPath(lp, "healthy_panic_threshold"), l.HealthyPanicThreshold)
	zp := fieldPath(lp, "zone_aware_lb_config")
	v.percent(fieldPath(zp, "routing_enabled"), l.ZoneAwareLBConfig.RoutingEnabled)
	if n := l.ZoneAwareLBConfig.MinClusterSize; n != nil && *n < 0 {
		v.errorf(fieldPath(zp, "min_cluster_size"), "must not be negative, got %d", *n)
	}
}

func (v *validator) clusterManager(m *ClusterManager) {
	if m.LocalClusterName != "" {
		v.clusterRef("cluster_manager.local_cluster_name", m.LocalClusterName)
	}
}

// percent checks an optional percentage in [0, 100].
func (v *validator) percent(path string, p *float64) {
	if p != nil && (*p < 0 || *p > 100 || *p != *p) {
		v.errorf(path, "must be a percentage from 0 to 100, got %g", *p)
	}
}

// lbBlock is one load-balancing policy's config block in a cluster and the
// YAML key it is written under.
type lbBlock struct {
	key string
	cfg lbpolicy.Config
}

var lbConfigType = reflect.TypeFor[lbpolicy.Config]()

// lbBlocks returns the cluster's policy config blocks, found by type: every
// field whose pointer implements lbpolicy.Config, under its YAML key. The
// loader applies each block's defaults and runs its checks, so a policy's
// block needs nothing in this package but its field in Cluster.
func (c *Cluster) lbBlocks() []lbBlock {
	rv := reflect.ValueOf(c).Elem()
	var out []lbBlock
	for i := range rv.NumField() {
		f := rv.Field(i)
		if !f.Addr().Type().Implements(lbConfigType) {
			continue
		}
		key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
		out = append(out, lbBlock{key: key, cfg: f.Addr().Interface().(lbpolicy.Config)})
	}
	return out
}

// blockReporter reports a policy block's problems at their paths under the
// block.
type blockReporter struct {
	v    *validator
	path string
}

func (r blockReporter) Errorf(field, format string, args ...any) {
	r.v.errorf(fieldPath(r.path, field), format, args...)
}

func (r blockReporter) OneOf(field, value string, allowed []string) {
	r.v.oneOf(fieldPath(r.path, field), value, allowed)
}
