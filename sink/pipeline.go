package sink

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/sink/aggregate"
	"github.com/hopwatch/hopwatch/sink/ingest"
	"github.com/hopwatch/hopwatch/sink/mapping"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// Pipeline turns lines into series updates: parse, map, aggregate. It is
// shared; each reader goroutine uses its own Worker from NewWorker.
type Pipeline struct {
	parser    statsd.Parser
	mapper    atomic.Pointer[mapping.Mapper]
	gen       atomic.Uint64
	store     *aggregate.Store
	metrics   *Metrics
	relay     *Relay
	cacheSize int
	seed      maphash.Seed
	// zeroSeriesLimit: see SetZeroSeriesLimit; -1 is the default.
	zeroSeriesLimit atomic.Int64
}

// NewPipeline wires a parser, a mapper and a store. cacheSize bounds each
// worker's cache of resolved series (0 disables caching).
func NewPipeline(p statsd.Parser, m *mapping.Mapper, store *aggregate.Store, metrics *Metrics, relay *Relay, cacheSize int) *Pipeline {
	pl := &Pipeline{parser: p, store: store, metrics: metrics, relay: relay, cacheSize: cacheSize, seed: maphash.MakeSeed()}
	pl.mapper.Store(m)
	pl.zeroSeriesLimit.Store(-1)
	return pl
}

// SetMapper swaps the mapping (a reload); workers drop their caches.
func (p *Pipeline) SetMapper(m *mapping.Mapper) {
	p.mapper.Store(m)
	p.gen.Add(1)
}

// Mapper is the current mapping.
func (p *Pipeline) Mapper() *mapping.Mapper { return p.mapper.Load() }

// entry is a cached resolution of (type, name, tags) to a series. It is
// stored by value in the cache map: there is one per series and reader, so
// it holds only the series and a pointer to what apply needs of the
// mapping, which is shared by every entry with the same mapping behaviour.
type entry struct {
	series *aggregate.Series
	info   *applyInfo
}

// applyInfo is the part of a mapping.Result that updates need. Workers
// intern them, so the cache holds one per distinct behaviour, not one per
// series.
type applyInfo struct {
	outcome          uint8
	matched          bool
	keepMilliseconds bool
	hasScale         bool
	scale            float64
	name             string // escaped metric name, for conflict accounting
}

func infoOf(res *mapping.Result, outcome uint8) applyInfo {
	ai := applyInfo{outcome: outcome, matched: res.Matched, keepMilliseconds: res.KeepMilliseconds,
		hasScale: res.HasScale, scale: res.Scale}
	if outcome == outcomeConflict {
		ai.name = res.Name
	}
	return ai
}

const (
	outcomeSeries uint8 = iota
	outcomeDrop
	outcomeEmptyName
	outcomeConflict
)

// Worker processes lines for one reader goroutine. It is not safe for
// concurrent use.
type Worker struct {
	p      *Pipeline
	line   statsd.Line
	cache  map[string]entry
	infos  map[applyInfo]*applyInfo
	gen    uint64
	epoch  uint64
	key    []byte
	skey   []byte
	local  counters
	labels []aggregate.Label
	// Scratch for createZeros.
	zlabels []aggregate.Label
	zkey    []byte
}

var _ ingest.Handler = (*Worker)(nil)

// NewWorker returns a worker with an empty cache.
func (p *Pipeline) NewWorker() *Worker {
	return &Worker{p: p, cache: map[string]entry{}, infos: map[applyInfo]*applyInfo{}, gen: p.gen.Load(), epoch: p.store.Epoch()}
}

// HandlePacket splits a datagram on '\n' (like statsd_exporter, so empty
// lines count as lines) and processes every line.
func (w *Worker) HandlePacket(pkt []byte) {
	for {
		i := bytes.IndexByte(pkt, '\n')
		if i < 0 {
			w.handleLine(pkt)
			break
		}
		w.handleLine(pkt[:i])
		pkt = pkt[i+1:]
	}
	w.flush()
}

// HandleLine processes one line (TCP).
func (w *Worker) HandleLine(line []byte) {
	w.handleLine(line)
	w.flush()
}

func (w *Worker) flush() { w.p.metrics.add(&w.local) }

func (w *Worker) handleLine(line []byte) {
	c := &w.local
	c.lines++
	if w.p.relay != nil && len(line) > 0 {
		w.p.relay.Line(line)
	}
	l := &w.line
	w.p.parser.Parse(line, l)
	c.samples += uint64(l.SamplesSeen)
	c.tags += uint64(l.TaggedSamples)
	c.tagErrors += uint64(l.TagErrors)
	for _, r := range l.Errors {
		c.sampleErrors[r]++
	}
	if len(l.Samples) == 0 {
		return
	}
	if g, e := w.p.gen.Load(), w.p.store.Epoch(); g != w.gen || e != w.epoch {
		w.clearCache()
		w.gen, w.epoch = g, e
	}
	for i := range l.Samples {
		w.handleSample(&l.Samples[i])
	}
}

func (w *Worker) cacheKey(s *statsd.Sample) []byte {
	k := append(w.key[:0], byte(s.Type))
	k = append(k, w.line.Name...)
	for _, t := range w.line.Tags {
		k = append(k, 0xff)
		k = append(k, t.Key...)
		k = append(k, 0xfe)
		k = append(k, t.Value...)
	}
	w.key = k
	return k
}

// clearCache empties the cache. A new map, rather than clear(), gives the
// memory of a large cache back to the GC.
func (w *Worker) clearCache() {
	if len(w.cache) > 0 {
		w.cache = map[string]entry{}
	}
	if len(w.infos) > 0 {
		w.infos = map[applyInfo]*applyInfo{}
	}
}

func (w *Worker) handleSample(s *statsd.Sample) {
	key := w.cacheKey(s)
	if e, ok := w.cache[string(key)]; ok {
		if w.apply(e, s) {
			return
		}
		delete(w.cache, string(key)) // the series expired meanwhile
	}
	e, ok := w.resolve(s)
	if !ok {
		return
	}
	if w.p.cacheSize > 0 {
		if len(w.cache) >= w.p.cacheSize {
			w.clearCache() // cheap bounded eviction; refills from the store
			// The entry's info may have come from the old intern table;
			// re-intern it so the new table owns it.
			e.info = w.intern(*e.info)
		}
		w.cache[string(key)] = e
	}
	w.apply(e, s)
}

// intern returns the shared copy of ai.
func (w *Worker) intern(ai applyInfo) *applyInfo {
	if p := w.infos[ai]; p != nil {
		return p
	}
	p := &ai
	w.infos[ai] = p
	return p
}

// eventKind maps a StatsD type and mapping to the family kind.
func eventKind(t statsd.Type, r *mapping.Result) aggregate.Kind {
	switch t {
	case statsd.TypeCounter:
		return aggregate.KindCounter
	case statsd.TypeGauge, statsd.TypeSet:
		return aggregate.KindGauge
	}
	if r.Observer == mapping.ObserverHistogram {
		return aggregate.KindHistogram
	}
	return aggregate.KindSummary
}

// resolve is the slow path: map the name, build labels and the series key,
// and find or create the series. It returns false when nothing is
// cacheable (budget drops are retried because budget may free up).
func (w *Worker) resolve(s *statsd.Sample) (entry, bool) {
	c := &w.local
	res := w.p.mapper.Load().Map(string(w.line.Name), s.Type)
	if res.Drop {
		return entry{info: w.intern(infoOf(res, outcomeDrop))}, true
	}
	if res.Matched && res.Name == "" {
		return entry{info: w.intern(infoOf(res, outcomeEmptyName))}, true
	}
	labels := w.buildLabels(res)
	kind := eventKind(s.Type, res)
	sk := aggregate.AppendKey(w.skey[:0], res.Name, labels)
	w.skey = sk
	// Negative counters never create a series (statsd_exporter checks
	// before registering), so look up without creating in that case.
	if s.Type == statsd.TypeCounter && scaled(res, s) < 0 {
		se := w.p.store.Lookup(sk)
		if se == nil {
			c.events.mapped(res.Matched)
			c.errNegative++
			return entry{}, false
		}
	}
	se, out := w.p.store.GetOrCreate(sk, func() *aggregate.Spec {
		return &aggregate.Spec{Help: res.Help, Kind: kind, Set: s.Type == statsd.TypeSet,
			TTL: res.TTL, Buckets: res.Buckets, Summary: res.Summary}
	})
	switch out {
	case aggregate.Conflict:
		return entry{info: w.intern(infoOf(res, outcomeConflict))}, true
	case aggregate.DroppedGlobal, aggregate.DroppedFamily:
		c.events.mapped(res.Matched)
		w.p.metrics.overflow(out == aggregate.DroppedGlobal, res.Name, false)
		return entry{}, false
	case aggregate.Invalid:
		// Cannot happen: the key is built by AppendKey above.
		return entry{}, false
	case aggregate.Folded:
		w.p.metrics.overflow(false, res.Name, true)
	}
	if se.Kind() != kind || se.IsSet() != (s.Type == statsd.TypeSet) {
		return entry{info: w.intern(infoOf(res, outcomeConflict))}, true
	}
	if out == aggregate.Created && res.Zeros != nil {
		w.createZeros(res, labels)
	}
	return entry{series: se, info: w.intern(infoOf(res, outcomeSeries))}, true
}

// createZeros creates, at 0, every counter and histogram family of the
// entity a new series belongs to (mapping.Zeros): the first stat the sink
// sees of a cluster, connection manager or listener brings all of its
// families, with the series' labels minus the per-code ones. A proxy that
// sends a counter only once it moved (Envoy), or a stat the proxy cannot
// announce (a histogram without samples), so still has its series from
// the first scrape. Each is an ordinary new series: the cardinality
// budgets apply, and zeros are made only while the store holds fewer
// series than the zero limit (SetZeroSeriesLimit: by default half the
// global budget), so that real series keep room. Runs only when a series
// is created, so it costs nothing once the entity is known.
func (w *Worker) createZeros(res *mapping.Result, labels []aggregate.Label) {
	limit := w.p.zeroLimit()
	if limit <= 0 || w.p.store.Len() >= limit {
		return
	}
	z := res.Zeros
	ls := w.zlabels[:0]
	for _, l := range labels {
		if !slices.Contains(z.Drop, l.Name) {
			ls = append(ls, l)
		}
	}
	w.zlabels = ls
	for _, f := range z.Families {
		spec := &aggregate.Spec{Help: res.Help, Kind: aggregate.KindCounter, TTL: res.TTL}
		if f.Histogram {
			spec.Kind, spec.Buckets = aggregate.KindHistogram, mapping.EnvoyBuckets
		}
		w.zkey = aggregate.AppendKey(w.zkey[:0], f.Name, ls)
		if w.p.store.Lookup(w.zkey) != nil {
			continue
		}
		if w.p.store.Len() >= limit {
			return
		}
		// A refusal by the budgets loses no data (nothing was sent), so it
		// is not counted as an overflow.
		w.p.store.GetOrCreate(w.zkey, func() *aggregate.Spec { return spec })
	}
}

// DefaultZeroSeriesLimit bounds the series createZeros makes when the
// store has no global budget (sink.max-series=0).
const DefaultZeroSeriesLimit = 500_000

// SetZeroSeriesLimit sets how many series the store may hold for
// createZeros to add more: 0 turns entity families at 0 off, a negative
// value restores the default (half the store's global budget, so that
// real series always have the other half; DefaultZeroSeriesLimit without
// one).
func (p *Pipeline) SetZeroSeriesLimit(n int) { p.zeroSeriesLimit.Store(int64(n)) }

func (p *Pipeline) zeroLimit() int {
	switch n := p.zeroSeriesLimit.Load(); {
	case n >= 0:
		return int(n)
	case p.store.MaxSeries() > 0:
		return p.store.MaxSeries() / 2
	default:
		return DefaultZeroSeriesLimit
	}
}

// buildLabels merges the line's tags (escaped keys, last one wins) with
// the mapping's labels (which win unless honor_labels), sorted by name.
func (w *Worker) buildLabels(res *mapping.Result) []aggregate.Label {
	ls := w.labels[:0]
	var kb []byte
	for _, t := range w.line.Tags {
		kb = mapping.AppendEscapedLabel(kb[:0], t.Key)
		name := string(kb)
		ls = setLabel(ls, name, string(t.Value), true)
	}
	for _, l := range res.Labels {
		ls = setLabel(ls, l.Name, l.Value, !res.HonorLabels)
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	w.labels = ls
	return ls
}

func setLabel(ls []aggregate.Label, name, value string, overwrite bool) []aggregate.Label {
	for i := range ls {
		if ls[i].Name == name {
			if overwrite {
				ls[i].Value = value
			}
			return ls
		}
	}
	return append(ls, aggregate.Label{Name: name, Value: value})
}

// scaled applies the ms→s conversion and the mapping's scale, in
// statsd_exporter's order.
func scaled(res *mapping.Result, s *statsd.Sample) float64 {
	ai := infoOf(res, outcomeSeries)
	return ai.scaled(s)
}

func (ai *applyInfo) scaled(s *statsd.Sample) float64 {
	v := s.Value
	if s.Type == statsd.TypeTimer && !ai.keepMilliseconds {
		v /= 1000
	}
	if ai.hasScale {
		v *= ai.scale
	}
	return v
}

// apply updates the cached series. It returns false if the series expired
// and must be resolved again.
func (w *Worker) apply(e entry, s *statsd.Sample) bool {
	c := &w.local
	ai := e.info
	switch ai.outcome {
	case outcomeDrop:
		c.actionDrop++
		c.droppedMapping++
		return true
	case outcomeEmptyName:
		c.errEmptyName++
		return true
	case outcomeConflict:
		c.events.mapped(ai.matched)
		w.p.metrics.conflict(s.Type, ai.name)
		return true
	}
	now := w.p.store.Now()
	se := e.series
	v := ai.scaled(s)
	switch s.Type {
	case statsd.TypeCounter:
		if v < 0 {
			c.events.mapped(ai.matched)
			c.errNegative++
			return true
		}
		if !se.Add(now, v) {
			return false
		}
		c.eventsCounter++
	case statsd.TypeGauge:
		ok := false
		if s.Relative {
			ok = se.Add(now, v)
		} else {
			ok = se.Set(now, v)
		}
		if !ok {
			return false
		}
		c.eventsGauge++
	case statsd.TypeSet:
		if !se.AddToSet(now, maphash.Bytes(w.p.seed, s.Raw)) {
			return false
		}
		c.eventsSet++
	default:
		wt := s.Weight()
		if wt <= 0 {
			c.events.mapped(ai.matched)
			return true
		}
		if !w.observe(se, now, v, wt) {
			return false
		}
		c.eventsObserver++
	}
	c.events.mapped(ai.matched)
	return true
}

// observe records an observer sample; a traced one (the line's trace ID
// section) is kept as its bucket's exemplar when the series is a
// histogram, stamped with the time of receipt: the store's coarse clock
// would give a second's traced requests one timestamp, and Prometheus
// refuses an exemplar older than the one it has.
func (w *Worker) observe(se *aggregate.Series, now int64, v, wt float64) bool {
	if w.line.HasTraceID && se.Kind() == aggregate.KindHistogram {
		return se.ObserveExemplar(time.Now().UnixNano(), v, wt, w.line.TraceID)
	}
	return se.Observe(now, v, wt)
}
