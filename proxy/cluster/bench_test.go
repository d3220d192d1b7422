package cluster

import (
	"fmt"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func BenchmarkPick(b *testing.B) {
	for _, policy := range policies {
		for _, weighted := range []bool{false, true} {
			for _, n := range []int{3, 50} {
				weights := make([]int, n)
				for i := range weights {
					weights[i] = 1
					if weighted {
						weights[i] = 1 + i%5
					}
				}
				kind := "equal"
				if weighted {
					kind = "weighted"
				}
				name := fmt.Sprintf("%s/%s/hosts=%d", policy, kind, n)
				setup := func(b *testing.B) *Cluster {
					m, err := NewManagerWithOptions(b.Context(), []config.Cluster{staticCluster("c", policy, weights...)}, nil, nil, Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(m.Close)
					return m.Get("c")
				}
				b.Run(name, func(b *testing.B) {
					c := setup(b)
					b.ReportAllocs()
					for b.Loop() {
						h := c.Pick(nil)
						h.BeginRequest()
						h.EndRequest()
					}
				})
				b.Run(name+"/parallel", func(b *testing.B) {
					c := setup(b)
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							h := c.Pick(nil)
							h.BeginRequest()
							h.EndRequest()
						}
					})
				})
			}
		}
	}
}

// BenchmarkPickRetry measures the retry path, which filters out the
// attempted host and may allocate.
func BenchmarkPickRetry(b *testing.B) {
	m, err := NewManagerWithOptions(b.Context(), []config.Cluster{staticCluster("c", "round_robin", 1, 1, 1, 1, 1)}, nil, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	c := m.Get("c")
	lb := &LBContext{Attempted: []*Host{c.Hosts()[0]}}
	b.ReportAllocs()
	for b.Loop() {
		c.Pick(lb)
	}
}
