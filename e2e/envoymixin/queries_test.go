package envoymixin

import "testing"

// TestNeedsFromTheMixin parses every query of the committed dashboards:
// a query the extraction cannot read fails here, without the pipeline.
func TestNeedsFromTheMixin(t *testing.T) {
	qs, err := LoadQueries("testdata/envoy-mixin")
	if err != nil {
		t.Fatal(err)
	}
	needs, err := Needs(qs)
	if err != nil {
		t.Fatal(err)
	}
	// The three dashboards hold dozens of queries over Envoy's cluster,
	// http and listener families; far fewer means the extraction lost them.
	if len(qs) < 40 || len(needs) < 20 {
		t.Fatalf("%d queries, %d metric name and label sets: the dashboards were not read", len(qs), len(needs))
	}
	for _, n := range needs {
		t.Log(n.Key())
	}
	t.Logf("%d queries, %d metric name and label sets", len(qs), len(needs))
}
