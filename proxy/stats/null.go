package stats

// NewNullStore returns Envoy's null stats store: a *Store whose typed
// constructors work exactly as a real store's (the same stats, the same
// per-scope cache, the same max_stats cap, so its memory is bounded by the
// configuration as a real store's is) but whose stats nobody reads. They
// are not listed (Counters, Gauges, Histograms and Len are empty, Find
// returns nil), so the admin endpoints and a flusher show and send
// nothing, and histogram samples are never queued for a timer-mode sink.
//
// It is what stats_config.disabled gives the proxy, and the default of a
// piece used without a store, so that stats objects are never nil and the
// request path has no "are stats on" branches.
func NewNullStore(cfg Config) (*Store, error) { return newStore(cfg, true) }

// MustNewNullStore is NewNullStore with the default configuration, which
// cannot fail: the stand-in store of a piece constructed without one.
func MustNewNullStore() *Store {
	s, err := NewNullStore(Config{})
	if err != nil {
		panic("stats: the default configuration is invalid: " + err.Error())
	}
	return s
}

// IsNull reports whether s is a null store (NewNullStore).
func (s *Store) IsNull() bool { return s.null }
