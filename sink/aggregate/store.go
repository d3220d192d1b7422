// Package aggregate keeps the StatsD-derived series: counters, gauges, sets,
// histograms and summaries, sharded by the hash of the series key so that no
// global lock sits on the ingest path. It enforces cardinality budgets,
// expires idle series with per-shard expiry heaps, and resolves type
// conflicts the way statsd_exporter does.
package aggregate

import (
	"container/heap"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the Prometheus type of a family.
type Kind uint8

// Family kinds.
const (
	KindCounter Kind = iota + 1
	KindGauge
	KindHistogram
	KindSummary
)

var kindNames = [...]string{"untyped", "counter", "gauge", "histogram", "summary"}

// String returns the Prometheus TYPE name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "untyped"
}

// Label is one label of a series.
type Label struct {
	Name, Value string
}

// Objective is a summary quantile with its allowed error.
type Objective struct {
	Quantile, Error float64
}

// SummaryOptions mirror client_golang's SummaryOpts; zero values take its
// defaults.
type SummaryOptions struct {
	Objectives []Objective
	MaxAge     time.Duration
	AgeBuckets uint32
	BufCap     uint32
}

// Spec describes a series to create. The metric name and labels are not
// part of it: they are encoded in the series key (see AppendKey), which is
// the only copy of them the store keeps.
type Spec struct {
	Help string
	Kind Kind
	// Set marks a gauge that counts distinct values per interval.
	Set     bool
	TTL     time.Duration
	Buckets []float64 // histograms: sorted upper bounds without +Inf
	Summary SummaryOptions
}

// Overflow is what happens to a new series beyond a cardinality budget.
type Overflow uint8

// Overflow behaviours.
const (
	// OverflowDrop drops samples of the new series.
	OverflowDrop Overflow = iota
	// OverflowFold adds them to the family's overflow series, labelled
	// {statsd_sink_overflow="true"}.
	OverflowFold
)

// OverflowLabel is the label of a family's overflow series.
const OverflowLabel = "statsd_sink_overflow"

// Options configure a Store.
type Options struct {
	// Shards is the number of lock shards (default 256).
	Shards int
	// MaxSeries limits all series together; 0 is unlimited. New metric
	// names beyond it are always dropped (folding needs a family).
	MaxSeries int
	// MaxSeriesPerFamily limits series per metric name; 0 is unlimited.
	MaxSeriesPerFamily int
	// Overflow selects drop or fold.
	Overflow Overflow
	// SetInterval is the period over which sets count distinct values
	// (default 1m).
	SetInterval time.Duration
	// DefaultTTL applies to series whose mapping sets no ttl; 0 never
	// expires them.
	DefaultTTL time.Duration
	// MaxSetValues bounds the distinct values a set tracks per interval
	// (default 65536), so a set cannot grow without bound.
	MaxSetValues int
}

// Outcome says how GetOrCreate resolved a key.
type Outcome uint8

// Outcomes of GetOrCreate.
const (
	Found Outcome = iota
	Created
	// Folded: the budget was exhausted and the family's overflow series
	// was returned instead.
	Folded
	// DroppedGlobal / DroppedFamily: over budget, no series returned.
	DroppedGlobal
	DroppedFamily
	// Conflict: the name exists with another type (or collides with a
	// histogram/summary's _sum/_count/_bucket), like statsd_exporter.
	Conflict
	// Invalid: the key was not made by AppendKey.
	Invalid
)

// Store holds all series. It is safe for concurrent use.
type Store struct {
	opts     Options
	seed     maphash.Seed
	shards   []shard
	overflow shard // guards every overflow series

	famMu    sync.Mutex
	families map[string]*family

	series atomic.Int64
	// exemplarSeries counts histogram series that hold exemplars (each
	// has one array of len(buckets)+1), for ExemplarSeries.
	exemplarSeries atomic.Int64
	now            atomic.Int64 // coarse clock (unix ns), advanced by Tick
	epoch          atomic.Uint64
	setRot         int64 // next set rotation, guarded by tickMu
	tickMu         sync.Mutex
}

type shard struct {
	mu     sync.Mutex
	m      map[string]*Series
	expiry expiryHeap
	sets   []*Series
	_      [40]byte // keep neighbouring shard locks off one cache line
}

type family struct {
	store      *Store
	name, help string
	kind       Kind
	buckets    []float64
	n          int // live series, guarded by Store.famMu
	overflow   *Series
}

// Series is one labelled time series. Its values are guarded by its shard's
// lock; the update methods take it.
//
// It is kept small (80 bytes) because there is one per series and 100k
// series are normal: the name and labels live only in key (decoded for
// exposition), and everything a plain counter or gauge does not need sits
// behind one pointer.
type Series struct {
	shard    *shard
	fam      *family
	key      string // AppendKey encoding: the map key and the labels
	lastSeen int64
	ttl      int64
	value    float64
	aux      *aux
	kind     Kind
	isSet    bool
	dead     bool
}

// aux holds the state of histograms, summaries and sets.
type aux struct {
	// hist is a histogram's per-bucket (not cumulative) counts, +Inf
	// last, then the sum and the count: len(fam.buckets)+3 values.
	hist []float64
	// exemplars is a histogram's latest exemplar per bucket (+Inf last),
	// allocated with its first exemplar: see ObserveExemplar.
	exemplars []Exemplar
	sum       *summary
	set       *setState
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Shards <= 0 {
		opts.Shards = 256
	}
	if opts.SetInterval <= 0 {
		opts.SetInterval = time.Minute
	}
	if opts.MaxSetValues <= 0 {
		opts.MaxSetValues = 1 << 16
	}
	s := &Store{opts: opts, seed: maphash.MakeSeed(), shards: make([]shard, opts.Shards), families: map[string]*family{}}
	for i := range s.shards {
		s.shards[i].m = map[string]*Series{}
	}
	now := time.Now().UnixNano()
	s.now.Store(now)
	s.setRot = now + int64(opts.SetInterval)
	return s
}

// Epoch changes whenever a family is removed, so cached "conflict" answers
// can be dropped.
func (s *Store) Epoch() uint64 { return s.epoch.Load() }

// Len is the number of live series, overflow series included.
func (s *Store) Len() int { return int(s.series.Load()) }

// MaxSeries is the global cardinality budget (Options.MaxSeries; 0 is
// unlimited).
func (s *Store) MaxSeries() int { return s.opts.MaxSeries }

// Families is the number of metric names.
func (s *Store) Families() int {
	s.famMu.Lock()
	defer s.famMu.Unlock()
	return len(s.families)
}

func (s *Store) shardFor(key []byte) *shard {
	h := maphash.Bytes(s.seed, key)
	return &s.shards[h%uint64(len(s.shards))]
}

// Lookup returns the live series for key, or nil.
func (s *Store) Lookup(key []byte) *Series {
	sh := s.shardFor(key)
	sh.mu.Lock()
	se := sh.m[string(key)]
	sh.mu.Unlock()
	return se
}

// GetOrCreate returns the series for key, creating it from spec (called
// only on a miss) within the budgets.
// key must come from AppendKey.
func (s *Store) GetOrCreate(key []byte, spec func() *Spec) (*Series, Outcome) {
	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if se := sh.m[string(key)]; se != nil {
		return se, Found
	}
	name, _, ok := decodeName(key)
	if !ok || !validKey(key) {
		return nil, Invalid
	}
	sp := spec()
	s.famMu.Lock()
	fam := s.families[string(name)]
	if s.conflicts(fam, string(name), sp) {
		s.famMu.Unlock()
		return nil, Conflict
	}
	if s.opts.MaxSeries > 0 && int(s.series.Load()) >= s.opts.MaxSeries {
		if fam != nil && s.opts.Overflow == OverflowFold {
			o := s.overflowSeries(fam, sp)
			s.famMu.Unlock()
			return o, Folded
		}
		s.famMu.Unlock()
		return nil, DroppedGlobal
	}
	if s.opts.MaxSeriesPerFamily > 0 && fam != nil && fam.n >= s.opts.MaxSeriesPerFamily {
		if s.opts.Overflow == OverflowFold {
			o := s.overflowSeries(fam, sp)
			s.famMu.Unlock()
			return o, Folded
		}
		s.famMu.Unlock()
		return nil, DroppedFamily
	}
	if fam == nil {
		fam = &family{store: s, name: string(name), help: sp.Help, kind: sp.Kind, buckets: sp.Buckets}
		s.families[fam.name] = fam
	}
	fam.n++
	s.series.Add(1)
	s.famMu.Unlock()

	se := s.newSeries(sh, fam, string(key), sp)
	sh.m[se.key] = se
	if se.ttl > 0 {
		heap.Push(&sh.expiry, expiryItem{deadline: se.lastSeen + se.ttl, s: se})
	}
	if se.isSet {
		sh.sets = append(sh.sets, se)
	}
	return se, Created
}

func (s *Store) newSeries(sh *shard, fam *family, key string, sp *Spec) *Series {
	se := &Series{shard: sh, fam: fam, key: key, kind: fam.kind, isSet: sp.Set,
		lastSeen: s.now.Load(), ttl: int64(sp.TTL)}
	if se.ttl == 0 {
		se.ttl = int64(s.opts.DefaultTTL)
	}
	switch fam.kind {
	case KindHistogram:
		se.aux = &aux{hist: make([]float64, len(fam.buckets)+3)}
	case KindSummary:
		se.aux = &aux{sum: newSummary(sp.Summary, time.Unix(0, se.lastSeen))}
	case KindGauge:
		if sp.Set {
			se.aux = &aux{set: &setState{cur: map[uint64]struct{}{}, max: s.opts.MaxSetValues}}
		}
	}
	return se
}

// overflowSeries returns (creating) the family's overflow series; famMu
// must be held.
func (s *Store) overflowSeries(fam *family, sp *Spec) *Series {
	if fam.overflow == nil {
		o := *sp
		o.TTL = 0
		o.Set = false
		key := AppendKey(nil, fam.name, []Label{{Name: OverflowLabel, Value: "true"}})
		fam.overflow = s.newSeries(&s.overflow, fam, string(key), &o)
		s.series.Add(1)
	}
	return fam.overflow
}

// conflicts applies statsd_exporter's rules (pkg/registry): a name keeps
// its first type, and histograms/summaries also own name_sum, name_count
// (and name_bucket) against other types.
func (s *Store) conflicts(fam *family, name string, sp *Spec) bool {
	if fam != nil && fam.kind != sp.Kind {
		return true
	}
	other := func(name string, k Kind) bool {
		f := s.families[name]
		return f != nil && f.kind != k
	}
	switch sp.Kind {
	case KindCounter, KindGauge:
		// statsd_exporter compares against "counter" for gauges too.
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suf); ok && other(base, KindCounter) {
				return true
			}
		}
	case KindHistogram:
		for _, suf := range []string{"_sum", "_count", "_bucket"} {
			if other(name+suf, KindHistogram) {
				return true
			}
		}
	case KindSummary:
		for _, suf := range []string{"_sum", "_count"} {
			if other(name+suf, KindSummary) {
				return true
			}
		}
	}
	return false
}

// Kind is the series' family type.
func (se *Series) Kind() Kind { return se.kind }

// IsSet reports whether the series counts distinct values.
func (se *Series) IsSet() bool { return se.isSet }

// Name is the family name.
func (se *Series) Name() string { return se.fam.name }

// Overflow reports whether this is a family's overflow series.
func (se *Series) Overflow() bool { return se.shard == &se.fam.store.overflow }

// Add adds v to a counter or gauge. It returns false if the series expired
// meanwhile; the caller must then look it up again.
func (se *Series) Add(now int64, v float64) bool {
	if !se.lockLive() {
		return false
	}
	se.value += v
	se.lastSeen = now
	se.shard.mu.Unlock()
	return true
}

// Set sets a gauge.
func (se *Series) Set(now int64, v float64) bool {
	if !se.lockLive() {
		return false
	}
	se.value = v
	se.lastSeen = now
	se.shard.mu.Unlock()
	return true
}

// lockLive locks the series' shard for an update and reports whether the
// series is still live. A series the store expired meanwhile is left
// unlocked: its updates would be lost, so the caller must look it up again.
func (se *Series) lockLive() bool {
	se.shard.mu.Lock()
	if se.dead {
		se.shard.mu.Unlock()
		return false
	}
	return true
}

// Observe records v with weight w (1/sample rate) in a histogram or summary.
func (se *Series) Observe(now int64, v, w float64) bool { return se.record(now, v, w, nil) }

// ObserveExemplar is Observe for a traced observation: a histogram also
// keeps it as the exemplar of its bucket, replacing the one before, so a
// series holds at most one exemplar per bucket however many trace IDs
// arrive. now is the receipt time, the exemplar's timestamp. Summaries
// keep no exemplars.
func (se *Series) ObserveExemplar(now int64, v, w float64, traceID TraceID) bool {
	return se.record(now, v, w, &traceID)
}

func (se *Series) record(now int64, v, w float64, traceID *TraceID) bool {
	if !se.lockLive() {
		return false
	}
	if a := se.aux; a != nil {
		if a.hist != nil {
			i := observe(a.hist, se.fam.buckets, v, w)
			if traceID != nil {
				if a.exemplars == nil {
					a.exemplars = make([]Exemplar, len(se.fam.buckets)+1)
					se.fam.store.exemplarSeries.Add(1)
				}
				a.exemplars[i] = Exemplar{TraceID: *traceID, Value: v, Time: now}
			}
		} else if a.sum != nil {
			a.sum.observe(time.Unix(0, now), v, w)
		}
	}
	se.lastSeen = now
	se.shard.mu.Unlock()
	return true
}

// AddToSet records a set member, identified by its hash.
func (se *Series) AddToSet(now int64, member uint64) bool {
	if !se.lockLive() {
		return false
	}
	if se.aux == nil {
		se.shard.mu.Unlock()
		return true
	}
	if st := se.aux.set; st != nil && len(st.cur) < st.max {
		st.cur[member] = struct{}{}
	}
	se.lastSeen = now
	se.shard.mu.Unlock()
	return true
}

// Now is the store's coarse clock in unix nanoseconds; updates stamp series
// with it instead of calling time.Now per line.
func (s *Store) Now() int64 { return s.now.Load() }

// Tick advances the clock, expires idle series and rotates set intervals.
// The server calls it every second. It returns the number of expired series.
func (s *Store) Tick(now time.Time) int {
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	n := now.UnixNano()
	s.now.Store(n)
	rotate := n >= s.setRot
	if rotate {
		for s.setRot <= n {
			s.setRot += int64(s.opts.SetInterval)
		}
	}
	var expired []*Series
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		// Only entries whose deadline passed are examined: no full scan.
		for len(sh.expiry) > 0 && sh.expiry[0].deadline < n {
			it := heap.Pop(&sh.expiry).(expiryItem)
			se := it.s
			if se.dead {
				continue
			}
			if d := se.lastSeen + se.ttl; d < n {
				se.dead = true
				if se.aux != nil && se.aux.exemplars != nil {
					s.exemplarSeries.Add(-1)
				}
				delete(sh.m, se.key)
				expired = append(expired, se)
			} else {
				heap.Push(&sh.expiry, expiryItem{deadline: d, s: se})
			}
		}
		if rotate && len(sh.sets) > 0 {
			live := sh.sets[:0]
			for _, se := range sh.sets {
				if se.dead {
					continue
				}
				st := se.aux.set
				st.last = float64(len(st.cur))
				st.rotated = true
				clear(st.cur)
				live = append(live, se)
			}
			clear(sh.sets[len(live):])
			sh.sets = live
		}
		sh.mu.Unlock()
	}
	if len(expired) > 0 {
		s.famMu.Lock()
		removed := false
		for _, se := range expired {
			se.fam.n--
			if se.fam.n == 0 && se.fam.overflow == nil && s.families[se.fam.name] == se.fam {
				delete(s.families, se.fam.name)
				removed = true
			}
		}
		s.famMu.Unlock()
		s.series.Add(-int64(len(expired)))
		if removed {
			s.epoch.Add(1)
		}
	}
	return len(expired)
}

type expiryItem struct {
	deadline int64
	s        *Series
}

type expiryHeap []expiryItem

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = expiryItem{}
	*h = old[:len(old)-1]
	return it
}

type setState struct {
	cur     map[uint64]struct{}
	last    float64
	rotated bool
	max     int
}

// value is the distinct count of the last complete interval, or of the
// current one before the first interval has completed.
func (st *setState) value() float64 {
	if st.rotated {
		return st.last
	}
	return float64(len(st.cur))
}

// observe adds v with weight w to a flat histogram h (see Series.hist)
// with upper bounds bounds, and returns the bucket's index.
func observe(h, bounds []float64, v, w float64) int {
	// Same bucket choice as client_golang: the first bound >= v.
	var i int
	if len(bounds) < 35 {
		for i < len(bounds) && !(v <= bounds[i]) {
			i++
		}
	} else {
		i = sort.SearchFloat64s(bounds, v)
	}
	n := len(bounds) + 1
	h[i] += w
	h[n] += weighted(v, w)
	h[n+1] += w
	return i
}

// weighted is v·w, the sum a sample of weight w adds. For an integral
// weight a product within 1e-9 (relative) of an integer is that integer:
// a compact-mode line from hopwatch's proxy carries the mean s/c of c
// integer samples, and mean·c must give back the integer sum s exactly
// (float rounding of the mean would otherwise leave it an ulp off, as
// 1/49·49 does). The change is below any float noise of real samples.
func weighted(v, w float64) float64 {
	if w == 1 {
		return v
	}
	p := v * w
	if w == math.Trunc(w) {
		if r := math.Round(p); r != p && math.Abs(p-r) <= 1e-9*math.Abs(r) {
			return r
		}
	}
	return p
}

// FamilySnapshot is a consistent-per-shard copy of one family for exposition.
type FamilySnapshot struct {
	Name, Help string
	Kind       Kind
	Buckets    []float64 // histogram upper bounds without +Inf
	Series     []SeriesSnapshot
}

// Quantile is one summary quantile value.
type Quantile struct {
	Quantile, Value float64
}

// SeriesSnapshot is one series' values.
type SeriesSnapshot struct {
	Labels []Label
	// Value is a counter's or gauge's value.
	Value float64
	// Count and Sum are a histogram's or summary's.
	Count, Sum float64
	// Cumulative holds cumulative bucket counts, +Inf last.
	Cumulative []float64
	// Exemplars holds a histogram's latest exemplar per bucket, beside
	// Cumulative; nil when the series has none. An entry with Time 0 is
	// a bucket without one.
	Exemplars []Exemplar
	Quantiles []Quantile
}

// Snapshot copies every family, sorted by name, with series sorted by
// labels. Each shard is locked only while its series are copied, so a
// scrape never holds up ingest for long. Label strings alias the series
// keys, so a snapshot copies no label text.
func (s *Store) Snapshot() []FamilySnapshot {
	idx := map[*family]int{}
	var out []FamilySnapshot
	// Family sizes, so each family's series slice is allocated once.
	famSize := map[*family]int{}
	s.famMu.Lock()
	for _, f := range s.families {
		famSize[f] = f.n
	}
	s.famMu.Unlock()
	now := time.Unix(0, s.now.Load())
	// One backing array for every series' labels: one allocation per
	// scrape instead of one per series.
	labels := make([]Label, 0, 2*s.Len()+8)
	add := func(se *Series) {
		i, ok := idx[se.fam]
		if !ok {
			i = len(out)
			idx[se.fam] = i
			out = append(out, FamilySnapshot{Name: se.fam.name, Help: se.fam.help, Kind: se.fam.kind, Buckets: se.fam.buckets,
				Series: make([]SeriesSnapshot, 0, famSize[se.fam]+1)})
		}
		start := len(labels)
		labels = appendLabels(labels, se.key)
		ss := se.snapshot(now)
		ss.Labels = labels[start:len(labels):len(labels)]
		out[i].Series = append(out[i].Series, ss)
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, se := range sh.m {
			add(se)
		}
		sh.mu.Unlock()
	}
	s.famMu.Lock()
	var overflow []*Series
	for _, f := range s.families {
		if f.overflow != nil {
			overflow = append(overflow, f.overflow)
		}
	}
	s.famMu.Unlock()
	s.overflow.mu.Lock()
	for _, se := range overflow {
		add(se)
	}
	s.overflow.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := range out {
		ser := out[i].Series
		sort.Slice(ser, func(a, b int) bool { return lessLabels(ser[a].Labels, ser[b].Labels) })
	}
	return out
}

func lessLabels(a, b []Label) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i].Name != b[i].Name {
			return a[i].Name < b[i].Name
		}
		if a[i].Value != b[i].Value {
			return a[i].Value < b[i].Value
		}
	}
	return len(a) < len(b)
}

// snapshot copies the values (not the labels); the shard lock must be held.
func (se *Series) snapshot(now time.Time) SeriesSnapshot {
	var ss SeriesSnapshot
	switch {
	case se.aux == nil:
		ss.Value = se.value
	case se.aux.hist != nil:
		h := se.aux.hist
		n := len(h) - 2
		ss.Sum, ss.Count = h[n], h[n+1]
		ss.Cumulative = make([]float64, n)
		c := 0.0
		for i, v := range h[:n] {
			c += v
			ss.Cumulative[i] = c
		}
		if se.aux.exemplars != nil {
			ss.Exemplars = append([]Exemplar(nil), se.aux.exemplars...)
		}
	case se.aux.sum != nil:
		ss.Count, ss.Sum, ss.Quantiles = se.aux.sum.snapshot(now)
	case se.aux.set != nil:
		ss.Value = se.aux.set.value()
	default:
		ss.Value = se.value
	}
	return ss
}

// nan is kept here so summaries report NaN without importing math twice.
var nan = math.NaN()
