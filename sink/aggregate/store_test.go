package aggregate

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func spec(k Kind) func() *Spec {
	return func() *Spec { return &Spec{Help: "h", Kind: k, Buckets: []float64{1, 5}} }
}

// key is the series key of name with label name/value pairs.
func key(name string, labels ...string) []byte {
	var ls []Label
	for i := 0; i < len(labels); i += 2 {
		ls = append(ls, Label{Name: labels[i], Value: labels[i+1]})
	}
	return AppendKey(nil, name, ls)
}

func find(fams []FamilySnapshot, name string) *FamilySnapshot {
	for i := range fams {
		if fams[i].Name == name {
			return &fams[i]
		}
	}
	return nil
}

func TestCounterGaugeHistogram(t *testing.T) {
	s := New(Options{Shards: 4})
	now := s.Now()
	c, out := s.GetOrCreate(key("c"), spec(KindCounter))
	if out != Created {
		t.Fatalf("outcome %v", out)
	}
	c.Add(now, 1)
	c.Add(now, 2.5)
	if c2, out := s.GetOrCreate(key("c"), spec(KindCounter)); c2 != c || out != Found {
		t.Fatal("second GetOrCreate did not find the series")
	}
	g, _ := s.GetOrCreate(key("g"), spec(KindGauge))
	g.Set(now, 10)
	g.Add(now, -3)
	h, _ := s.GetOrCreate(key("h"), spec(KindHistogram))
	for _, v := range []float64{0.5, 1, 3, 100, math.NaN()} {
		h.Observe(now, v, 1)
	}
	h.Observe(now, 2, 4) // sampled at 1/4: four observations
	fams := s.Snapshot()
	if v := find(fams, "c").Series[0].Value; v != 3.5 {
		t.Errorf("counter = %v", v)
	}
	if v := find(fams, "g").Series[0].Value; v != 7 {
		t.Errorf("gauge = %v", v)
	}
	hs := find(fams, "h").Series[0]
	if want := []float64{2, 7, 9}; fmt.Sprint(hs.Cumulative) != fmt.Sprint(want) || hs.Count != 9 {
		t.Errorf("histogram buckets %v count %v, want %v count 9", hs.Cumulative, hs.Count, want)
	}
}

func TestConflicts(t *testing.T) {
	for _, tc := range []struct {
		first, second string
		k1, k2        Kind
		conflict      bool
	}{
		{"x", "x", KindCounter, KindGauge, true},
		{"x", "x", KindHistogram, KindSummary, true},
		{"x", "x_sum", KindHistogram, KindCounter, true},
		{"x_count", "x", KindCounter, KindSummary, true},
		{"x_bucket", "x", KindGauge, KindHistogram, true},
		{"x", "x_sum", KindCounter, KindCounter, false},
		{"x", "x_sum", KindGauge, KindGauge, true}, // statsd_exporter checks the base against "counter"
		{"x", "y", KindCounter, KindGauge, false},
	} {
		s := New(Options{})
		s.GetOrCreate(key(tc.first), spec(tc.k1))
		_, out := s.GetOrCreate(key(tc.second, "l", "v"), spec(tc.k2))
		if (out == Conflict) != tc.conflict {
			t.Errorf("%s %v then %s %v: outcome %v, conflict want %v", tc.first, tc.k1, tc.second, tc.k2, out, tc.conflict)
		}
	}
}

func TestTTLExpiry(t *testing.T) {
	s := New(Options{})
	t0 := time.Unix(1000, 0)
	s.Tick(t0)
	sp := func() *Spec { return &Spec{Kind: KindCounter, TTL: 10 * time.Second} }
	a, _ := s.GetOrCreate(key("a", "i", "1"), sp)
	b, _ := s.GetOrCreate(key("a", "i", "2"), sp)
	forever, _ := s.GetOrCreate(key("b"), spec(KindGauge))
	s.Tick(t0.Add(8 * time.Second))
	a.Add(s.Now(), 1) // keeps a alive until t0+18s
	if n := s.Tick(t0.Add(11 * time.Second)); n != 1 {
		t.Fatalf("expired %d at 11s, want 1 (a2)", n)
	}
	if b.Add(s.Now(), 1) {
		t.Error("update of an expired series succeeded")
	}
	if n := s.Tick(t0.Add(19 * time.Second)); n != 1 || s.Len() != 1 || s.Families() != 1 {
		t.Errorf("at 19s expired %d, %d series, %d families; want 1, 1, 1", n, s.Len(), s.Families())
	}
	if !forever.Set(s.Now(), 1) {
		t.Error("series without TTL expired")
	}
	// The expired family is gone; a conflicting type may now take the name.
	if _, out := s.GetOrCreate(key("a", "i", "1"), spec(KindGauge)); out != Created {
		t.Errorf("re-creating an expired name: %v", out)
	}
}

func TestBudgets(t *testing.T) {
	for _, tc := range []struct {
		name            string
		opts            Options
		wantSeries      int
		wantLastOutcome Outcome
	}{
		{"family drop", Options{MaxSeriesPerFamily: 3}, 3, DroppedFamily},
		{"family fold", Options{MaxSeriesPerFamily: 3, Overflow: OverflowFold}, 4, Folded},
		{"global drop", Options{MaxSeries: 5}, 5, DroppedGlobal},
		{"global fold", Options{MaxSeries: 5, Overflow: OverflowFold}, 6, Folded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.opts)
			var out Outcome
			var se *Series
			for i := range 10 {
				se, out = s.GetOrCreate(key("m", "i", fmt.Sprint(i)), spec(KindCounter))
				if se != nil {
					se.Add(s.Now(), 1)
				}
			}
			if s.Len() != tc.wantSeries || out != tc.wantLastOutcome {
				t.Errorf("%d series, last outcome %v; want %d, %v", s.Len(), out, tc.wantSeries, tc.wantLastOutcome)
			}
			if out == Folded {
				f := find(s.Snapshot(), "m")
				var overflow float64
				for _, ss := range f.Series {
					if ss.Labels[0].Name == OverflowLabel {
						overflow = ss.Value
					}
				}
				if want := float64(10 - tc.wantSeries + 1); overflow != want {
					t.Errorf("overflow series = %v, want %v", overflow, want)
				}
			}
			// A new name over the global budget is dropped even when folding.
			if tc.opts.MaxSeries > 0 {
				if _, out := s.GetOrCreate(key("new"), spec(KindCounter)); out != DroppedGlobal {
					t.Errorf("new family over global budget: %v", out)
				}
			}
		})
	}
}

func TestSetsCountPerInterval(t *testing.T) {
	s := New(Options{SetInterval: 10 * time.Second})
	t0 := time.Unix(0, s.Now())
	se, _ := s.GetOrCreate(key("s"), func() *Spec { return &Spec{Kind: KindGauge, Set: true} })
	for _, m := range []uint64{1, 2, 2, 3} {
		se.AddToSet(s.Now(), m)
	}
	if v := find(s.Snapshot(), "s").Series[0].Value; v != 3 {
		t.Errorf("first interval so far = %v, want 3", v)
	}
	s.Tick(t0.Add(11 * time.Second))
	se.AddToSet(s.Now(), 9)
	if v := find(s.Snapshot(), "s").Series[0].Value; v != 3 {
		t.Errorf("after rotation = %v, want 3 (last complete interval)", v)
	}
	s.Tick(t0.Add(21 * time.Second))
	if v := find(s.Snapshot(), "s").Series[0].Value; v != 1 {
		t.Errorf("second interval = %v, want 1", v)
	}
}

func BenchmarkSnapshot100k(b *testing.B) {
	s := New(Options{})
	for i := range 100000 {
		se, _ := s.GetOrCreate(key(fmt.Sprintf("fam%d", i%100), "l", fmt.Sprint(i)), spec(KindCounter))
		se.Add(s.Now(), 1)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Snapshot()
	}
}
