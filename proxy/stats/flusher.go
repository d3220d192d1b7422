package stats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// Flusher sends the store's stats to StatsD/DogStatsD sinks: every flush
// interval counters (as deltas), used gauges (absolute) and compact
// histograms; every timer drain interval the queued timer samples. It runs
// on its own goroutine; the request path only touches atomics, and a slow
// or unreachable sink costs the flusher, never a request. One flusher per
// store.
type Flusher struct {
	store      *Store
	cfg        FlusherConfig
	log        *slog.Logger
	sinks      []*sinkState
	queue      *sampleQueue // nil when no sink is in timer mode
	anyCompact bool
	// anyExemplars: some timer sink sends trace_id sections.
	anyExemplars bool

	mu           sync.Mutex // serialises Flush and drains
	lastCounters []uint64
	// announced is how many counters (in creation order) have had their
	// first flush; the ones after it are sent even if they did not move.
	announced int
	lastHists []histState
	mean, val []byte // scratch for compact lines
	traceSect []byte // scratch for a timer line's trace_id section
}

// histState is what a compact sink already sent of one histogram.
type histState struct {
	counts, sums []uint64
}

// NewFlusher validates cfg (after defaults) and prepares the sinks. It does
// not connect: UDP sockets are opened and TCP connections dialed on first
// use, so an unreachable sink never fails startup. log may be nil.
func NewFlusher(store *Store, cfg FlusherConfig, log *slog.Logger) (*Flusher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Flusher{store: store, cfg: cfg, log: log}
	timer := false
	for i, sc := range cfg.Sinks {
		if sc.Type == SinkStatsD && len(store.fixed) > 0 {
			// As in Envoy, the configuration stands; but say so, because
			// whoever set stats_tags expects to see them.
			log.Warn("a plain statsd sink cannot carry stats_config.stats_tags: its lines are flat names without tags; use type dogstatsd to send them",
				"sink", fmt.Sprintf("stats_sinks[%d]", i), "address", sc.Address, "tags", len(store.fixed))
		}
		s := &sinkState{cfg: sc, dog: sc.Type == SinkDogStatsD, compact: sc.Histograms == HistogramsCompact, self: &store.self, log: log}
		if sc.Protocol == ProtocolTCP {
			s.w = &tcpWriter{addr: sc.Address}
		} else {
			s.w = &udpWriter{addr: sc.Address}
		}
		s.buf = make([]byte, 0, sc.MaxBytesPerDatagram)
		f.sinks = append(f.sinks, s)
		timer = timer || !s.compact
		f.anyCompact = f.anyCompact || s.compact
		f.anyExemplars = f.anyExemplars || sc.Exemplars
	}
	if timer {
		f.queue = newSampleQueue(cfg.TimerQueueSize)
		store.timerQueue.Store(f.queue)
	}
	return f, nil
}

// Run flushes every flush interval until ctx is done, then flushes once
// more and closes the sinks. It returns nil.
func (f *Flusher) Run(ctx context.Context) error {
	t := time.NewTicker(f.cfg.FlushInterval)
	defer t.Stop()
	var drain <-chan time.Time
	if f.queue != nil {
		dt := time.NewTicker(f.cfg.TimerDrainInterval)
		defer dt.Stop()
		drain = dt.C
	}
	for {
		select {
		case <-ctx.Done():
			f.Flush(context.WithoutCancel(ctx))
			return f.Close()
		case <-t.C:
			f.Flush(ctx)
		case <-drain:
			f.DrainTimers(ctx)
		}
	}
}

// Close stops queueing timer samples and closes the sink connections.
func (f *Flusher) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.queue != nil {
		f.store.timerQueue.CompareAndSwap(f.queue, nil)
	}
	var errs []error
	for _, s := range f.sinks {
		errs = append(errs, s.w.close())
	}
	return errors.Join(errs...)
}

// Flush sends one round now: counters, gauges, histograms (compact sinks)
// and the queued timer samples (timer sinks). Errors are counted and
// logged, never returned: stats must not break the proxy.
func (f *Flusher) Flush(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.store.refreshServer()
	counters, gauges, hists := f.store.lists()

	for len(f.lastCounters) < len(counters) {
		f.lastCounters = append(f.lastCounters, 0)
	}
	announced := f.announced
	f.announced = len(counters)
	for i, c := range counters {
		v := c.Value()
		d := v - f.lastCounters[i]
		f.lastCounters[i] = v
		if d == 0 && (!f.cfg.AnnounceCounters || i < announced || !c.visible()) {
			continue // counters that did not move are skipped
		}
		for _, s := range f.sinks {
			s.line(ctx, &c.meta, d, "|c", nil)
		}
	}
	for _, g := range gauges {
		if !g.Used() {
			continue // as Envoy: gauges nobody ever set are not sent
		}
		v := g.Value()
		for _, s := range f.sinks {
			s.line(ctx, &g.meta, v, "|g", nil)
		}
	}
	if f.anyCompact {
		f.flushCompact(ctx, hists)
	}
	f.drainLocked(ctx, hists)
	for _, s := range f.sinks {
		s.send(ctx)
	}
}

// DrainTimers sends the queued timer samples now.
func (f *Flusher) DrainTimers(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _, hists := f.store.lists()
	f.drainLocked(ctx, hists)
	for _, s := range f.sinks {
		s.send(ctx)
	}
}

func (f *Flusher) drainLocked(ctx context.Context, hists []*Histogram) {
	if f.queue == nil {
		return
	}
	// Bounded: at most one queue's worth per drain, so a flood of samples
	// cannot keep the flusher here forever.
	for range len(f.queue.cells) {
		smp, ok := f.queue.pop()
		if !ok {
			return
		}
		if int(smp.hist) >= len(hists) {
			// Created after our snapshot of the list.
			_, _, hists = f.store.lists()
			if int(smp.hist) >= len(hists) {
				continue
			}
		}
		h := hists[smp.hist]
		var sect []byte // the trace_id section, for sinks with exemplars
		if f.anyExemplars && smp.trace.IsValid() {
			f.traceSect = appendTraceSection(f.traceSect[:0], smp.trace)
			sect = f.traceSect
		}
		for _, s := range f.sinks {
			if s.compact {
				continue
			}
			last := sect
			if !s.cfg.Exemplars {
				last = nil
			}
			s.line(ctx, &h.meta, smp.v, "|ms", last)
		}
	}
}

// flushCompact sends, for each histogram bucket with c new samples of sum
// s, one line "name:<s/c>|ms|@<1/c>". A bucket whose count and sum cannot
// be read consistently right now is left whole for the next flush.
func (f *Flusher) flushCompact(ctx context.Context, hists []*Histogram) {
	for len(f.lastHists) < len(hists) {
		n := len(hists[len(f.lastHists)].counts)
		f.lastHists = append(f.lastHists, histState{counts: make([]uint64, n), sums: make([]uint64, n)})
	}
	val := f.val
	defer func() { f.val = val }()
	for hi, h := range hists {
		st := &f.lastHists[hi]
		for i := range h.counts {
			c, sum, ok := h.loadBucketRetry(i)
			if !ok {
				// Records kept hitting this bucket while we read it (or
				// one is descheduled halfway through): the sum may hold
				// values the count does not cover. Leave the bucket for the
				// next flush, which sends the whole delta; sending it now
				// would put a wrong mean on these lines and a mean too low,
				// maybe outside the bucket, on later ones.
				continue
			}
			dc, ds := c-st.counts[i], sum-st.sums[i]
			if dc == 0 {
				continue
			}
			// Consistent, so each of the dc samples lies in bucket i and so
			// does their mean ds/dc, also as meanOf computes it in float64
			// (TestCompactMeanStaysInBucket).
			st.counts[i], st.sums[i] = c, sum
			// Counts above maxCompactCount (never seen within one flush in
			// practice) go out as several lines with the same mean.
			f.mean = appendMean(f.mean[:0], ds, dc)
			for dc > 0 {
				n := min(dc, maxCompactCount)
				val = append(val[:0], f.mean...)
				val = append(val, "|ms"...)
				if n > 1 {
					val = append(val, "|@"...)
					val = appendSampleRate(val, n)
				}
				for _, s := range f.sinks {
					if s.compact {
						s.rawLine(ctx, &h.meta, val, nil)
					}
				}
				dc -= n
			}
		}
	}
}

// sinkState is one configured sink: its line format, batch buffer and
// connection.
type sinkState struct {
	cfg     SinkConfig
	dog     bool
	compact bool
	w       writer
	buf     []byte
	lines   int
	self    *selfStats
	log     *slog.Logger

	errsSinceLog uint64
	lastLog      time.Time
	scratch      []byte
}

// line formats and queues name:value<typ>[|#tags]<last> for this sink.
func (s *sinkState) line(ctx context.Context, m *meta, v uint64, typ string, last []byte) {
	b := strconv.AppendUint(s.scratch[:0], v, 10)
	b = append(b, typ...)
	s.scratch = b
	s.rawLine(ctx, m, b, last)
}

// rawLine writes prefix.name:<val>[|#tags]<last> into the batch. last is
// the section that must follow every other one (the trace_id section), or
// nil.
func (s *sinkState) rawLine(ctx context.Context, m *meta, val, last []byte) {
	name, tags := m.name, ""
	if s.dog {
		name, tags = m.tagExtracted, m.dogTags
	}
	n := len(s.cfg.Prefix) + 1 + len(name) + 1 + len(val) + len(last)
	if tags != "" {
		n += 2 + len(tags)
	}
	sep := 0
	if s.lines > 0 || s.cfg.Protocol == ProtocolTCP {
		sep = 1
	}
	if s.cfg.Protocol == ProtocolUDP && n > s.cfg.MaxBytesPerDatagram {
		s.self.LinesDropped.Inc()
		s.logErr(fmt.Errorf("line for %s is %d bytes, longer than max_bytes_per_datagram %d", m.name, n, s.cfg.MaxBytesPerDatagram))
		return
	}
	if s.lines > 0 && len(s.buf)+sep+n > s.cfg.MaxBytesPerDatagram {
		// send empties the datagram, so the next line needs no separator.
		s.send(ctx)
	}
	if s.cfg.Protocol == ProtocolUDP && s.lines > 0 {
		s.buf = append(s.buf, '\n')
	}
	s.buf = append(s.buf, s.cfg.Prefix...)
	s.buf = append(s.buf, '.')
	s.buf = append(s.buf, name...)
	s.buf = append(s.buf, ':')
	s.buf = append(s.buf, val...)
	if tags != "" {
		s.buf = append(s.buf, "|#"...)
		s.buf = append(s.buf, tags...)
	}
	s.buf = append(s.buf, last...)
	if s.cfg.Protocol == ProtocolTCP {
		s.buf = append(s.buf, '\n')
	}
	s.lines++
}

// send writes the pending batch as one datagram (or TCP write).
func (s *sinkState) send(ctx context.Context) {
	if s.lines == 0 {
		return
	}
	err := s.w.write(ctx, s.buf)
	if err != nil {
		s.self.SendErrors.Inc()
		s.self.LinesDropped.Add(uint64(s.lines))
		s.logErr(err)
	} else {
		s.self.LinesSent.Add(uint64(s.lines))
	}
	s.buf = s.buf[:0]
	s.lines = 0
}

// logErr logs at most once every 30 seconds per sink, with the number of
// errors in between, so a dead sink does not flood the log.
func (s *sinkState) logErr(err error) {
	s.errsSinceLog++
	if now := time.Now(); now.Sub(s.lastLog) >= 30*time.Second {
		s.log.Warn("stats sink error", "sink", s.cfg.Type, "address", s.cfg.Address, "protocol", s.cfg.Protocol,
			"errors", s.errsSinceLog, "err", err)
		s.lastLog, s.errsSinceLog = now, 0
	}
}

type writer interface {
	write(ctx context.Context, b []byte) error
	close() error
}

// udpWriter sends datagrams on a connected UDP socket, opened lazily (and
// reopened after a resolution failure).
type udpWriter struct {
	addr string
	conn net.Conn
}

func (u *udpWriter) write(ctx context.Context, b []byte) error {
	if u.conn == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "udp", u.addr)
		if err != nil {
			return fmt.Errorf("statsd udp %s: %w", u.addr, err)
		}
		u.conn = c
	}
	_ = u.conn.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := u.conn.Write(b); err != nil {
		return fmt.Errorf("statsd udp %s: %w", u.addr, err)
	}
	return nil
}

func (u *udpWriter) close() error {
	if u.conn == nil {
		return nil
	}
	err := u.conn.Close()
	u.conn = nil
	return err
}

// tcpWriter writes newline-terminated lines on a TCP connection, dialing
// lazily and, after a failure, not before a backoff that doubles from
// 250ms up to 30s. Writes have a deadline, so a stalled server costs the
// flusher at most that long per write.
type tcpWriter struct {
	addr      string
	conn      net.Conn
	backoff   time.Duration
	nextDial  time.Time
	dialLimit time.Duration // test hook; default 1s
}

var errBackoff = errors.New("waiting to reconnect")

func (t *tcpWriter) write(ctx context.Context, b []byte) error {
	if t.conn == nil {
		if time.Now().Before(t.nextDial) {
			return fmt.Errorf("statsd tcp %s: %w", t.addr, errBackoff)
		}
		limit := t.dialLimit
		if limit == 0 {
			limit = time.Second
		}
		d := net.Dialer{Timeout: limit}
		c, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			t.fail()
			return fmt.Errorf("statsd tcp %s: %w", t.addr, err)
		}
		t.conn = c
	}
	_ = t.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := t.conn.Write(b); err != nil {
		t.conn.Close()
		t.conn = nil
		t.fail()
		return fmt.Errorf("statsd tcp %s: %w", t.addr, err)
	}
	t.backoff = 0
	return nil
}

func (t *tcpWriter) fail() {
	switch {
	case t.backoff == 0:
		t.backoff = 250 * time.Millisecond
	case t.backoff < 30*time.Second:
		t.backoff = min(2*t.backoff, 30*time.Second)
	}
	t.nextDial = time.Now().Add(t.backoff)
}

func (t *tcpWriter) close() error {
	if t.conn == nil {
		return nil
	}
	err := t.conn.Close()
	t.conn = nil
	return err
}
