package stats

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxStats is the default cap on the number of stats in a store.
const DefaultMaxStats = 100_000

// Config configures a Store. Its YAML form is the stats_config block.
type Config struct {
	// HistogramBuckets are the upper bounds of every histogram's buckets, in
	// milliseconds, strictly increasing. Default: DefaultBuckets().
	HistogramBuckets []float64 `yaml:"histogram_buckets"`
	// MaxStats caps the number of stats; constructors past it hand out a
	// shared overflow stat and count stats.overflow. Default DefaultMaxStats.
	MaxStats int `yaml:"max_stats"`
	// FixedTags are added to every stat after its extracted tags
	// (stats_config.stats_tags with fixed_value; see fixedtags.go).
	FixedTags []Tag `yaml:"-"`
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	for i, b := range c.HistogramBuckets {
		if math.IsNaN(b) || math.IsInf(b, 0) || b <= 0 {
			return fmt.Errorf("stats_config.histogram_buckets[%d]: %v is not a positive finite number of milliseconds", i, b)
		}
		if i > 0 && b <= c.HistogramBuckets[i-1] {
			return fmt.Errorf("stats_config.histogram_buckets[%d]: %v is not greater than the previous bucket %v (buckets must be strictly increasing)", i, b, c.HistogramBuckets[i-1])
		}
	}
	if c.MaxStats < 0 {
		return fmt.Errorf("stats_config.max_stats: %d is negative", c.MaxStats)
	}
	return checkFixedTags(c.FixedTags)
}

// Store holds every stat of one proxy. Stats are created only from
// configuration (the typed constructors below), never from request data,
// and live for the life of the store, so they survive configuration
// reloads: calling a constructor again with the same names returns the same
// stats.
type Store struct {
	bounds   []float64
	maxStats int
	fixed    []Tag // added to every stat's tags
	start    time.Time

	// timerQueue is set while a timer-mode StatsD sink runs.
	timerQueue atomic.Pointer[sampleQueue]

	mu         sync.Mutex
	byName     map[string]Stat
	counters   []*Counter
	gauges     []*Gauge
	histograms []*Histogram
	scopes     map[string]any

	// Shared stand-ins handed out past the cap; they are not listed.
	overflowCounter   *Counter
	overflowGauge     *Gauge
	overflowHistogram *Histogram

	self   selfStats
	server *ServerStats

	// null marks a store that counts into stats nobody reads (null.go).
	null bool
}

// NewStore returns an empty store.
func NewStore(cfg Config) (*Store, error) { return newStore(cfg, false) }

func newStore(cfg Config, null bool) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		null:     null,
		bounds:   DefaultBuckets(),
		maxStats: cfg.MaxStats,
		start:    time.Now(),
		byName:   map[string]Stat{},
		scopes:   map[string]any{},
		fixed:    slices.Clone(cfg.FixedTags),
	}
	if len(cfg.HistogramBuckets) > 0 {
		s.bounds = append([]float64(nil), cfg.HistogramBuckets...)
	}
	if s.maxStats == 0 {
		s.maxStats = DefaultMaxStats
	}
	s.overflowCounter = &Counter{meta: meta{name: "stats.overflow_stat", tagExtracted: "stats.overflow_stat"}}
	s.overflowGauge = &Gauge{meta: meta{name: "stats.overflow_stat", tagExtracted: "stats.overflow_stat"}}
	s.overflowHistogram = s.newHistogram(meta{name: "stats.overflow_stat", tagExtracted: "stats.overflow_stat"})
	s.overflowHistogram.store = nil // never queued for sinks
	s.mu.Lock()
	// The store's own stats do not count against the cap: they must exist
	// to report the cap being hit.
	b := builder{s: s, ignoreCap: true}
	b.fill(reflect.ValueOf(&s.self).Elem(), newScope(rootScope))
	s.mu.Unlock()
	return s, nil
}

// Buckets returns the histogram bucket bounds. Do not modify.
func (s *Store) Buckets() []float64 { return s.bounds }

// lookup returns the typed stats for key, building them with build on the
// first call. build runs with s.mu held.
func lookup[T any](s *Store, key string, build func(b *builder) *T) *T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.scopes[key]; ok {
		return v.(*T)
	}
	v := build(&builder{s: s})
	s.scopes[key] = v
	return v
}

// ClusterStats returns the stats of cluster name (cluster.<name>.*).
func (s *Store) ClusterStats(name string) *ClusterStats {
	return lookup(s, "cluster\x00"+name, func(b *builder) *ClusterStats {
		return b.clusterLocked(name)
	})
}

// ZoneStats returns cluster.<cluster>.zone.<from>.<to>.* for a zone pair:
// from is this proxy's zone, to the upstream endpoint's.
func (s *Store) ZoneStats(cluster, from, to string) *ZoneStats {
	return lookup(s, "zone\x00"+cluster+"\x00"+from+"\x00"+to, func(b *builder) *ZoneStats {
		var cs *ClusterStats
		if v, ok := s.scopes["cluster\x00"+cluster]; ok {
			cs = v.(*ClusterStats)
		} else {
			cs = b.clusterLocked(cluster)
			s.scopes["cluster\x00"+cluster] = cs
		}
		z := &ZoneStats{}
		b.collapsed = cs.UpstreamRqCodeCollapsed
		b.fill(reflect.ValueOf(z).Elem(), newScope(zoneScope, cluster, from, to))
		return z
	})
}

func (b *builder) clusterLocked(name string) *ClusterStats {
	c := &ClusterStats{}
	b.fill(reflect.ValueOf(c).Elem(), newScope(clusterScope, name))
	// The code blocks share the cluster's collapse counter, which fill has
	// created by now (it precedes them in the struct).
	for _, cs := range []*CodeStats{c.Responses, c.Retry, c.Canary} {
		cs.collapsed = c.UpstreamRqCodeCollapsed
	}
	return c
}

// HTTPConnManagerStats returns http.<statPrefix>.*.
func (s *Store) HTTPConnManagerStats(statPrefix string) *HTTPConnManagerStats {
	return lookup(s, "http\x00"+statPrefix, func(b *builder) *HTTPConnManagerStats {
		h := &HTTPConnManagerStats{}
		b.fill(reflect.ValueOf(h).Elem(), newScope(httpScope, statPrefix))
		return h
	})
}

// ListenerStats returns listener.<address>.*. The address is host:port as
// configured; like Envoy, ':' becomes '_' in the name (127.0.0.1_8080).
func (s *Store) ListenerStats(address string) *ListenerStats {
	return lookup(s, "listener\x00"+address, func(b *builder) *ListenerStats {
		l := &ListenerStats{}
		b.fill(reflect.ValueOf(l).Elem(), newScope(listenerScope, address))
		return l
	})
}

// ListenerHTTPStats returns listener.<address>.http.<statPrefix>.*.
func (s *Store) ListenerHTTPStats(address, statPrefix string) *ListenerHTTPStats {
	return lookup(s, "listenerhttp\x00"+address+"\x00"+statPrefix, func(b *builder) *ListenerHTTPStats {
		l := &ListenerHTTPStats{}
		b.fill(reflect.ValueOf(l).Elem(), newScope(listenerHTTPScope, statPrefix, address))
		return l
	})
}

// ListenerCertStats returns listener.<address>.ssl.certificate.<certName>.*
// for a certificate a TLS listener serves.
func (s *Store) ListenerCertStats(address, certName string) *ListenerCertStats {
	return lookup(s, "listenercert\x00"+address+"\x00"+certName, func(b *builder) *ListenerCertStats {
		c := &ListenerCertStats{}
		b.fill(reflect.ValueOf(c).Elem(), newScope(listenerCertScope, address, certName))
		return c
	})
}

// RouteStats returns the opt-in per-route stats,
// vhost.<virtualHost>.route.<statPrefix>.*.
func (s *Store) RouteStats(virtualHost, statPrefix string) *RouteStats {
	return lookup(s, "route\x00"+virtualHost+"\x00"+statPrefix, func(b *builder) *RouteStats {
		r := &RouteStats{}
		b.fill(reflect.ValueOf(r).Elem(), newScope(routeScope, virtualHost, statPrefix))
		r.Responses.collapsed = r.UpstreamRqCodeCollapsed
		return r
	})
}

// ServerStats returns server.*. server.live starts at 1; the caller sets it
// to 0 while draining. server.version is derived from the binary's VCS
// revision when the build recorded one.
func (s *Store) ServerStats() *ServerStats {
	return lookup(s, "server", func(b *builder) *ServerStats {
		v := &ServerStats{}
		b.fill(reflect.ValueOf(v).Elem(), newScope(serverScope))
		v.Live.Set(1)
		v.Concurrency.Set(uint64(runtime.GOMAXPROCS(0)))
		v.Version.Set(buildVersion())
		s.server = v
		return v
	})
}

// TracerStats returns tracing.opentelemetry.*. The proxy asks for them only
// when tracing is configured, so a proxy without tracing lists none.
func (s *Store) TracerStats() *TracerStats {
	return lookup(s, "tracer", func(b *builder) *TracerStats {
		v := &TracerStats{}
		b.fill(reflect.ValueOf(v).Elem(), newScope(tracerScope))
		return v
	})
}

// HTTP2CodecStats returns http2.*, the downstream HTTP/2 codec stats.
func (s *Store) HTTP2CodecStats() *HTTP2CodecStats {
	return lookup(s, "http2", func(b *builder) *HTTP2CodecStats {
		v := &HTTP2CodecStats{}
		b.fill(reflect.ValueOf(v).Elem(), newScope(http2Scope))
		return v
	})
}

// SetDaysUntilFirstCertExpiring sets server.days_until_first_cert_expiring.
func (v *ServerStats) SetDaysUntilFirstCertExpiring(days uint64) {
	v.DaysUntilFirstCertExpiring.Set(days)
}

// buildVersion is Envoy's server.version idea: the first 6 hex digits of the
// source revision as an integer; 0 when unknown.
func buildVersion() uint64 {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return 0
	}
	for _, kv := range bi.Settings {
		if kv.Key == "vcs.revision" && len(kv.Value) >= 6 {
			if n, err := strconv.ParseUint(kv.Value[:6], 16, 64); err == nil {
				return n
			}
		}
	}
	return 0
}

// refreshServer samples the process-level server gauges. It is called
// before each flush and each admin response, never per request.
func (s *Store) refreshServer() {
	s.mu.Lock()
	v := s.server
	s.mu.Unlock()
	if v == nil {
		return
	}
	v.Uptime.Set(uint64(time.Since(s.start) / time.Second))
	v.Concurrency.Set(uint64(runtime.GOMAXPROCS(0)))
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(samples)
	val := func(i int) uint64 {
		if samples[i].Value.Kind() == metrics.KindUint64 {
			return samples[i].Value.Uint64()
		}
		return 0
	}
	v.MemoryAllocated.Set(val(0))
	if total, released := val(1), val(2); total >= released {
		v.MemoryHeapSize.Set(total - released)
	}
}

// lists returns the current stat lists. The slices only grow and their
// elements never change, so the headers taken under the lock stay valid.
func (s *Store) lists() ([]*Counter, []*Gauge, []*Histogram) {
	if s.null {
		return nil, nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters, s.gauges, s.histograms
}

// Len returns the number of stats in the store.
func (s *Store) Len() int {
	if s.null {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byName)
}

// Counters returns every counter, in creation order.
func (s *Store) Counters() []*Counter { c, _, _ := s.lists(); return c }

// Gauges returns every gauge, in creation order.
func (s *Store) Gauges() []*Gauge { _, g, _ := s.lists(); return g }

// Histograms returns every histogram, in creation order.
func (s *Store) Histograms() []*Histogram { _, _, h := s.lists(); return h }

// Find returns the stat with flat name name, or nil (always nil in a null
// store).
func (s *Store) Find(name string) Stat {
	if s.null {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byName[name]
}

// Self-stat accessors for tests and the admin page.

// OverflowCount is stats.overflow: constructor calls refused by the cap.
func (s *Store) OverflowCount() uint64 { return s.self.Overflow.Value() }

var errKindClash = errors.New("a stat with this name already exists with another type")

// register creates (or returns the existing) stat. It runs with s.mu held.
func (s *Store) register(kind Kind, m meta, ignoreCap bool) (Stat, error) {
	if old, ok := s.byName[m.name]; ok {
		if old.Kind() != kind {
			return nil, fmt.Errorf("%s: %w", m.name, errKindClash)
		}
		return old, nil
	}
	if !ignoreCap && len(s.byName) >= s.maxStats {
		s.self.Overflow.Inc()
		switch kind {
		case KindCounter:
			return s.overflowCounter, nil
		case KindGauge:
			return s.overflowGauge, nil
		default:
			return s.overflowHistogram, nil
		}
	}
	m.promName = prometheusName(m.tagExtracted)
	if len(s.fixed) > 0 {
		// A copy: m.tags may be shared with the builder's other stats.
		m.tags = append(slices.Clip(m.tags), s.fixed...)
	}
	var pl, dt strings.Builder
	for i, t := range m.tags {
		if i > 0 {
			pl.WriteByte(',')
			dt.WriteByte(',')
		}
		pl.WriteString(prometheusLabel(t.Name))
		pl.WriteString(`="`)
		pl.WriteString(escapeLabelValue(t.Value))
		pl.WriteByte('"')
		dt.WriteString(t.Name)
		dt.WriteByte(':')
		dt.WriteString(t.Value)
	}
	m.promLabels, m.dogTags = pl.String(), dt.String()
	var st Stat
	switch kind {
	case KindCounter:
		m.index = len(s.counters)
		c := &Counter{meta: m}
		s.counters = append(s.counters, c)
		st = c
	case KindGauge:
		m.index = len(s.gauges)
		g := &Gauge{meta: m}
		s.gauges = append(s.gauges, g)
		st = g
	default:
		m.index = len(s.histograms)
		h := s.newHistogram(m)
		s.histograms = append(s.histograms, h)
		st = h
	}
	s.byName[m.name] = st
	return st, nil
}

func (s *Store) newHistogram(m meta) *Histogram {
	h := &Histogram{
		bounds: s.bounds,
		counts: make([]atomic.Uint64, len(s.bounds)+1),
		sums:   make([]atomic.Uint64, len(s.bounds)+1),
		starts: make([]atomic.Uint64, len(s.bounds)+1),
		store:  s,
		meta:   m,
	}
	if s.null {
		h.store = nil // never queued for a timer-mode sink
	}
	return h
}
