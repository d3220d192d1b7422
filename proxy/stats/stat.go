package stats

import (
	"math"
	"sync/atomic"
)

// Kind is the type of a stat: counter, gauge or histogram.
type Kind uint8

// The three stat kinds, as Envoy has them.
const (
	KindCounter Kind = iota + 1
	KindGauge
	KindHistogram
)

// String returns the Prometheus type name of k.
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "unknown"
}

// Tag is one extracted tag of a stat, named as Envoy names it
// (envoy.cluster_name) with its value (backend).
type Tag struct {
	Name  string
	Value string
}

// Stat is what every counter, gauge and histogram tells about itself. The
// three renderings are computed once, when the stat is created.
type Stat interface {
	// Name is the flat Envoy name: cluster.backend.upstream_rq_200.
	Name() string
	// TagExtractedName is the name with the tag values cut out, as Envoy's
	// default tag extractors leave it: cluster.upstream_rq.
	TagExtractedName() string
	// Tags are the extracted tags, in Envoy's extraction order.
	Tags() []Tag
	// Kind is the stat's type.
	Kind() Kind
}

// meta is the immutable description shared by all stat kinds. Everything a
// sink or the admin endpoints print is precomputed here, so flushing never
// formats a name.
type meta struct {
	name         string
	tagExtracted string
	tags         []Tag
	promName     string // envoy_cluster_upstream_rq
	promLabels   string // envoy_response_code="200",envoy_cluster_name="backend"
	dogTags      string // envoy.response_code:200,envoy.cluster_name:backend
	// hideUntilUsed keeps preallocated per-code counters out of listings until
	// they count something, so a cluster does not show 60 zero counters for
	// codes it never saw (Envoy creates them lazily, hopwatch preallocates).
	hideUntilUsed bool
	index         int // position in the store's list of this kind
}

// Name returns the flat Envoy name (cluster.backend.upstream_rq_200).
func (m *meta) Name() string { return m.name }

// TagExtractedName returns the name without tag values (cluster.upstream_rq).
func (m *meta) TagExtractedName() string { return m.tagExtracted }

// Tags returns the extracted tags in Envoy's order. Do not modify.
func (m *meta) Tags() []Tag { return m.tags }

// Counter is a monotonically increasing count. Its methods are single
// atomic operations, safe for concurrent use, and never allocate.
type Counter struct {
	v atomic.Uint64
	meta
}

// Inc adds one.
func (c *Counter) Inc() { c.v.Add(1) }

// Add adds n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Value returns the current count.
func (c *Counter) Value() uint64 { return c.v.Load() }

// Kind returns KindCounter.
func (c *Counter) Kind() Kind { return KindCounter }

// Gauge is a value that goes up and down. Like Envoy's gauges it is
// unsigned: decrementing below zero is a caller bug and wraps.
type Gauge struct {
	v atomic.Uint64
	// used is set on the first change; StatsD sinks send only used gauges,
	// as Envoy does, and ?usedonly filters on it.
	used atomic.Bool
	meta
}

func (g *Gauge) markUsed() {
	// A plain load first: after the first change this is a read-only cache
	// line, so concurrent updates do not bounce it between cores.
	if !g.used.Load() {
		g.used.Store(true)
	}
}

// Inc adds one.
func (g *Gauge) Inc() { g.v.Add(1); g.markUsed() }

// Dec subtracts one.
func (g *Gauge) Dec() { g.v.Add(math.MaxUint64); g.markUsed() }

// Add adds n.
func (g *Gauge) Add(n uint64) { g.v.Add(n); g.markUsed() }

// Sub subtracts n.
func (g *Gauge) Sub(n uint64) { g.v.Add(^(n - 1)); g.markUsed() }

// Set sets the value.
func (g *Gauge) Set(v uint64) { g.v.Store(v); g.markUsed() }

// Value returns the current value.
func (g *Gauge) Value() uint64 { return g.v.Load() }

// Used reports whether the gauge was ever changed.
func (g *Gauge) Used() bool { return g.used.Load() }

// Kind returns KindGauge.
func (g *Gauge) Kind() Kind { return KindGauge }
