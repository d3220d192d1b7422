package sink

import (
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/ingest"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// maxNamedLabels bounds the per-metric-name self-metric labels (conflicts,
// overflows) so that a flood of names cannot grow the self-metrics either.
const maxNamedLabels = 100

// otherName stands for every name beyond maxNamedLabels.
const otherName = "__other__"

type eventsMapping struct{ nMapped, nUnmapped uint64 }

func (e *eventsMapping) mapped(matched bool) {
	if matched {
		e.nMapped++
	} else {
		e.nUnmapped++
	}
}

// counters are a worker's unsynchronised tallies, added to Metrics after
// every packet so the hot path does no atomic operations per line.
type counters struct {
	lines, samples, tags, tagErrors                       uint64
	sampleErrors                                          [statsd.NumReasons]uint64
	events                                                eventsMapping
	eventsCounter, eventsGauge, eventsObserver, eventsSet uint64
	actionDrop, droppedMapping, errEmptyName, errNegative uint64
}

// Metrics are the sink's self-metrics. statsd_exporter's names are kept
// where they exist so existing alerts keep working; new ones start with
// statsd_sink_.
type Metrics struct {
	lines, samples, tags, tagErrors                       atomic.Uint64
	sampleErrors                                          [statsd.NumReasons]atomic.Uint64
	mapped, unmapped                                      atomic.Uint64
	eventsCounter, eventsGauge, eventsObserver, eventsSet atomic.Uint64
	actionDrop, droppedMapping, errEmptyName, errNegative atomic.Uint64
	reloadOK, reloadFail                                  atomic.Uint64
	scrapes                                               atomic.Uint64
	scrapeNanos                                           atomic.Int64
	lastScrapeNanos                                       atomic.Int64
	conflictsTotal, overflowTotal                         atomic.Uint64

	mu        sync.Mutex
	conflicts map[[2]string]uint64 // {type, metric_name}
	overflows map[[2]string]uint64 // {limit, metric_name}
	warned    map[string]bool
	logger    *slog.Logger
}

// NewMetrics returns zeroed self-metrics that log overflow with logger.
func NewMetrics(logger *slog.Logger) *Metrics {
	return &Metrics{conflicts: map[[2]string]uint64{}, overflows: map[[2]string]uint64{}, warned: map[string]bool{}, logger: logger}
}

func (m *Metrics) add(c *counters) {
	if c.lines == 0 {
		return
	}
	m.lines.Add(c.lines)
	addIf(&m.samples, c.samples)
	addIf(&m.tags, c.tags)
	addIf(&m.tagErrors, c.tagErrors)
	for i, v := range c.sampleErrors {
		addIf(&m.sampleErrors[i], v)
	}
	addIf(&m.mapped, c.events.nMapped)
	addIf(&m.unmapped, c.events.nUnmapped)
	addIf(&m.eventsCounter, c.eventsCounter)
	addIf(&m.eventsGauge, c.eventsGauge)
	addIf(&m.eventsObserver, c.eventsObserver)
	addIf(&m.eventsSet, c.eventsSet)
	addIf(&m.actionDrop, c.actionDrop)
	addIf(&m.droppedMapping, c.droppedMapping)
	addIf(&m.errEmptyName, c.errEmptyName)
	addIf(&m.errNegative, c.errNegative)
	*c = counters{}
}

func addIf(a *atomic.Uint64, v uint64) {
	if v != 0 {
		a.Add(v)
	}
}

func typeLabel(t statsd.Type) string {
	switch t {
	case statsd.TypeCounter:
		return "counter"
	case statsd.TypeGauge, statsd.TypeSet:
		return "gauge"
	}
	return "observer"
}

func (m *Metrics) conflict(t statsd.Type, name string) {
	m.conflictsTotal.Add(1)
	m.mu.Lock()
	k := [2]string{typeLabel(t), name}
	if _, ok := m.conflicts[k]; !ok && len(m.conflicts) >= maxNamedLabels {
		k[1] = otherName
	}
	m.conflicts[k]++
	first := !m.warned["conflict:"+name] && len(m.warned) < 10*maxNamedLabels
	if first {
		m.warned["conflict:"+name] = true
	}
	m.mu.Unlock()
	if first && m.logger != nil {
		m.logger.Warn("metric type conflict: samples dropped", "metric", name, "type", typeLabel(t))
	}
}

func (m *Metrics) overflow(global bool, name string, folded bool) {
	m.overflowTotal.Add(1)
	limit := "family"
	if global {
		limit = "global"
	}
	m.mu.Lock()
	k := [2]string{limit, name}
	if _, ok := m.overflows[k]; !ok && len(m.overflows) >= maxNamedLabels {
		k[1] = otherName
	}
	m.overflows[k]++
	first := !m.warned["overflow:"+name] && len(m.warned) < 10*maxNamedLabels
	if first {
		m.warned["overflow:"+name] = true
	}
	m.mu.Unlock()
	if first && m.logger != nil {
		m.logger.Warn("cardinality budget exceeded", "metric", name, "limit", limit, "folded", folded)
	}
}

func (m *Metrics) observeScrape(d time.Duration) {
	m.scrapes.Add(1)
	m.scrapeNanos.Add(int64(d))
	m.lastScrapeNanos.Store(int64(d))
}

// selfState is what Families needs besides Metrics.
type selfState struct {
	store       *aggregate.Store
	ingest      *ingest.Stats
	mappings    int
	kernelDrops func() (uint64, bool)
	relay       *Relay
}

func counter(name, help string, v float64, labels ...aggregate.Label) aggregate.FamilySnapshot {
	return aggregate.FamilySnapshot{Name: name, Help: help, Kind: aggregate.KindCounter,
		Series: []aggregate.SeriesSnapshot{{Labels: labels, Value: v}}}
}

func gauge(name, help string, v float64) aggregate.FamilySnapshot {
	return aggregate.FamilySnapshot{Name: name, Help: help, Kind: aggregate.KindGauge,
		Series: []aggregate.SeriesSnapshot{{Value: v}}}
}

func vec(kind aggregate.Kind, name, help string, label string, values map[string]float64) aggregate.FamilySnapshot {
	f := aggregate.FamilySnapshot{Name: name, Help: help, Kind: kind}
	for _, k := range sortedKeys(values) {
		f.Series = append(f.Series, aggregate.SeriesSnapshot{Labels: []aggregate.Label{{Name: label, Value: k}}, Value: values[k]})
	}
	return f
}

func vec2(name, help, l1, l2 string, values map[[2]string]uint64) aggregate.FamilySnapshot {
	f := aggregate.FamilySnapshot{Name: name, Help: help, Kind: aggregate.KindCounter}
	for k, v := range values {
		f.Series = append(f.Series, aggregate.SeriesSnapshot{Labels: []aggregate.Label{{Name: l1, Value: k[0]}, {Name: l2, Value: k[1]}}, Value: float64(v)})
	}
	sort.Slice(f.Series, func(i, j int) bool {
		a, b := f.Series[i].Labels, f.Series[j].Labels
		return a[0].Value < b[0].Value || a[0].Value == b[0].Value && a[1].Value < b[1].Value
	})
	return f
}

func (m *Metrics) families(st *selfState) []aggregate.FamilySnapshot {
	f := func(a *atomic.Uint64) float64 { return float64(a.Load()) }
	is := st.ingest
	// Every reason and every budget is exposed from the first scrape, at 0
	// until it happens, so that a dashboard's error panel shows 0 rather
	// than "No data" and rate() sees the first error (as the Envoy preset
	// does for an entity's counters).
	reasons := map[string]float64{}
	var parseDrops float64
	for i := range m.sampleErrors {
		v := f(&m.sampleErrors[i])
		reasons[statsd.Reason(i).String()] = v
		parseDrops += v
	}
	var overflowDrops float64
	m.mu.Lock()
	conf := vec2("statsd_exporter_events_conflict_total", "The total number of StatsD events with conflicting names.", "type", "metric_name", m.conflicts)
	over := vec2("statsd_sink_cardinality_overflow_total", "Samples beyond a cardinality budget, by limit and metric name (first 100 names, then __other__).", "limit", "metric_name", m.overflows)
	exceeded := map[string]bool{}
	for k, v := range m.overflows {
		overflowDrops += float64(v)
		exceeded[k[0]] = true
	}
	// A budget that no metric has exceeded yet is one series at 0, without
	// a metric_name.
	for _, limit := range []string{"family", "global"} {
		if !exceeded[limit] {
			over.Series = append(over.Series, aggregate.SeriesSnapshot{Labels: []aggregate.Label{{Name: "limit", Value: limit}}})
		}
	}
	m.mu.Unlock()
	kernel, _ := st.kernelDrops()
	out := []aggregate.FamilySnapshot{
		counter("statsd_exporter_lines_total", "The total number of StatsD lines received.", f(&m.lines)),
		counter("statsd_exporter_samples_total", "The total number of StatsD samples received.", f(&m.samples)),
		counter("statsd_exporter_tags_total", "The total number of DogStatsD tags processed.", f(&m.tags)),
		counter("statsd_exporter_tag_errors_total", "The number of errors parsing DogStatsD tags.", f(&m.tagErrors)),
		vec(aggregate.KindCounter, "statsd_exporter_sample_errors_total", "The total number of errors parsing StatsD samples.", "reason", reasons),
		counter("statsd_exporter_udp_packets_total", "The total number of StatsD packets received over UDP.", float64(is.UDPPackets.Load())),
		counter("statsd_exporter_udp_packet_drops_total", "The total number of dropped StatsD packets which received over UDP (kernel receive-queue drops; the sink has no internal queue).", float64(kernel)),
		counter("statsd_exporter_unixgram_packets_total", "The total number of StatsD packets received over Unixgram.", float64(is.UnixgramPackets.Load())),
		counter("statsd_exporter_tcp_connections_total", "The total number of TCP connections handled.", float64(is.TCPConnections.Load())),
		counter("statsd_exporter_tcp_connection_errors_total", "The number of errors encountered reading from TCP.", float64(is.TCPErrors.Load())),
		counter("statsd_exporter_tcp_too_long_lines_total", "The number of lines discarded due to being too long.", float64(is.TCPLineTooLong.Load())),
		vec(aggregate.KindCounter, "statsd_exporter_events_total", "The total number of StatsD events seen.", "type", map[string]float64{
			"counter": f(&m.eventsCounter), "gauge": f(&m.eventsGauge), "observer": f(&m.eventsObserver), "set": f(&m.eventsSet)}),
		vec(aggregate.KindCounter, "statsd_exporter_events_actions_total", "The total number of StatsD events by action.", "action", map[string]float64{
			"map": f(&m.mapped), "drop": f(&m.actionDrop)}),
		counter("statsd_exporter_events_unmapped_total", "The total number of StatsD events no mapping was found for.", f(&m.unmapped)),
		vec(aggregate.KindCounter, "statsd_exporter_events_error_total", "The total number of StatsD events discarded due to errors.", "reason", map[string]float64{
			"empty_metric_name": f(&m.errEmptyName), "illegal_negative_counter": f(&m.errNegative)}),
		conf,
		vec(aggregate.KindCounter, "statsd_exporter_config_reloads_total", "The number of configuration reloads.", "outcome", map[string]float64{
			"success": f(&m.reloadOK), "failure": f(&m.reloadFail)}),
		gauge("statsd_exporter_loaded_mappings", "The current number of configured metric mappings.", float64(st.mappings)),
		counter("statsd_sink_udp_kernel_drops_total", "Datagrams the kernel dropped on the sink's UDP sockets (from /proc/net/udp).", float64(kernel)),
		counter("statsd_sink_udp_truncated_total", "UDP datagrams larger than the read buffer.", float64(is.UDPTruncated.Load())),
		vec(aggregate.KindCounter, "statsd_sink_dropped_samples_total", "Samples dropped, by pipeline stage.", "stage", map[string]float64{
			"parse": parseDrops, "mapping": f(&m.droppedMapping), "conflict": float64(m.conflictsTotal.Load()),
			"budget": overflowDrops, "invalid": f(&m.errEmptyName) + f(&m.errNegative)}),
		gauge("statsd_sink_series", "Live series, overflow series included.", float64(st.store.Len())),
		gauge("statsd_sink_metric_families", "Live metric names.", float64(st.store.Families())),
		over,
		counter("statsd_sink_scrapes_total", "Scrapes of the metrics endpoint.", f(&m.scrapes)),
		counter("statsd_sink_scrape_duration_seconds_total", "Total time spent serving scrapes.", float64(m.scrapeNanos.Load())/1e9),
		gauge("statsd_sink_last_scrape_duration_seconds", "Duration of the previous scrape.", float64(m.lastScrapeNanos.Load())/1e9),
	}
	if st.relay != nil {
		out = append(out,
			counter("statsd_exporter_relay_lines_relayed_total", "The number of lines that were buffered to be relayed.", float64(st.relay.lines.Load()), aggregate.Label{Name: "target", Value: st.relay.target}),
			counter("statsd_exporter_relay_packets_total", "The number of StatsD packets relayed.", float64(st.relay.packets.Load()), aggregate.Label{Name: "target", Value: st.relay.target}),
			counter("statsd_exporter_relay_long_lines_total", "The number lines that were too long to relay.", float64(st.relay.long.Load()), aggregate.Label{Name: "target", Value: st.relay.target}),
		)
	}
	return out
}
