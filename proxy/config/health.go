package config

// HealthCheck is one active health check of a cluster (Envoy's
// core.HealthCheck with http_health_check). Owned by the health-checking
// work of issue 8; see docs/config.md.
type HealthCheck struct{}

// OutlierDetection is Envoy's cluster.outlier_detection. Owned by the
// health-checking work of issue 8; see docs/config.md.
type OutlierDetection struct{}

func (c *Cluster) applyHealthDefaults(cp string, explicit func(string) bool) {}

func (v *validator) clusterHealth(cp string, c *Cluster) {}
