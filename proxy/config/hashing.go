package config

// HashPolicy is one of Envoy's route.hash_policy entries. Owned by the
// consistent-hashing work of issue 8; see docs/config.md.
type HashPolicy struct{}

// RingHashLBConfig is Envoy's cluster.ring_hash_lb_config.
type RingHashLBConfig struct{}

// MaglevLBConfig is Envoy's cluster.maglev_lb_config.
type MaglevLBConfig struct{}

func (c *Cluster) applyHashingDefaults(cp string, explicit func(string) bool) {}

func (v *validator) clusterHashing(cp string, c *Cluster) {}

func (v *validator) routeHashPolicy(ap string, a *RouteAction) {}
