package headers

import (
	"strconv"
	"testing"
)

// TestValues: each value holds what was given, keeps it when more are
// handed out (from the same block or a new one), and cannot be grown into
// its neighbour.
func TestValues(t *testing.T) {
	var vs Values
	var got [][]string
	for i := range 3*valuesPerBlock + 1 {
		v := vs.One(strconv.Itoa(i))
		if len(v) != 1 || cap(v) != 1 {
			t.Fatalf("value %d: len %d cap %d, want 1 and 1", i, len(v), cap(v))
		}
		got = append(got, v)
	}
	_ = append(got[0], "grown")
	for i, v := range got {
		if v[0] != strconv.Itoa(i) {
			t.Errorf("value %d = %q after more were handed out", i, v[0])
		}
	}
	vs = Values{} // as a pooled owner resets it
	if v := vs.One("fresh"); &v[0] == &got[0][0] {
		t.Error("a reset Values reused a block a header map may still hold")
	}
}

// BenchmarkValues is the cost of the one-element values a proxied request
// sets: one allocation instead of one each.
func BenchmarkValues(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var vs Values
		for range valuesPerBlock {
			_ = vs.One("v")
		}
	}
}
