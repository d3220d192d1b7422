package sinkdiff

import (
	"path/filepath"
	"testing"

	"github.com/hopwatch/hopwatch/bench/sink/stream"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// TestBenchMappingMatches replays a slice of the exact stream `make
// bench-sink` uses, with its mapping, to both receivers: the benchmark only
// compares like with like if both produce the same series from it.
func TestBenchMappingMatches(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two receiver processes; skipped with -short")
	}
	ref, cand, selfCheck := binaries(t)
	envoy := stream.Envoy(stream.EnvoyOptions{Datagrams: 300, Seed: 1})
	distinct := stream.DistinctSeries(500, 10)
	c := &Case{
		Name:        "bench-stream",
		MappingFile: filepath.Join(e2etest.RepoRoot(t), "bench", "sink", "mapping.yml"),
		Datagrams:   append(envoy.Datagrams, distinct.Datagrams...),
	}
	runCase(t, c, ref, cand, selfCheck)
}
