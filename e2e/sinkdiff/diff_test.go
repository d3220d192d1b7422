package sinkdiff

import (
	"strings"
	"testing"

	"github.com/hopwatch/hopwatch/e2e/sinkdiff/statsdproc"
)

func series(t *testing.T, text string) map[string]*Series {
	t.Helper()
	fams, err := statsdproc.Parse([]byte(strings.TrimLeft(text, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return Flatten(fams)
}

func TestCompare(t *testing.T) {
	const summary = `
# TYPE s summary
s{quantile="0.5"} 2
s{quantile="0.99"} 4
s_sum 10
s_count 4
`
	const hist = `
# TYPE h histogram
h_bucket{le="0.1"} 1
h_bucket{le="1"} 2
h_bucket{le="+Inf"} 3
h_sum 5.5
h_count 3
`
	tests := []struct {
		name      string
		ref, cand string
		want      []Kind
	}{
		{"identical counters", "# TYPE c counter\nc{a=\"1\"} 3\n", "# TYPE c counter\nc{a=\"1\"} 3\n", nil},
		{"label order is irrelevant", "# TYPE c counter\nc{a=\"1\",b=\"2\"} 3\n", "# TYPE c counter\nc{b=\"2\",a=\"1\"} 3\n", nil},
		{"value differs", "# TYPE c counter\nc 3\n", "# TYPE c counter\nc 4\n", []Kind{ValueDiffers}},
		{"tiny float noise is equal", "# TYPE g gauge\ng 0.30000000000000004\n", "# TYPE g gauge\ng 0.3\n", nil},
		{"NaN equals NaN", "# TYPE g gauge\ng NaN\n", "# TYPE g gauge\ng NaN\n", nil},
		{"NaN differs from a number", "# TYPE g gauge\ng NaN\n", "# TYPE g gauge\ng 0\n", []Kind{ValueDiffers}},
		{"label value differs", "# TYPE c counter\nc{a=\"1\"} 3\n", "# TYPE c counter\nc{a=\"2\"} 3\n", []Kind{OnlyInReference, OnlyInCandidate}},
		{"missing in candidate", "# TYPE c counter\nc 3\n# TYPE d counter\nd 1\n", "# TYPE c counter\nc 3\n", []Kind{OnlyInReference}},
		{"extra in candidate", "# TYPE c counter\nc 3\n", "# TYPE c counter\nc 3\n# TYPE e gauge\ne 1\n", []Kind{OnlyInCandidate}},
		{"type differs", "# TYPE c counter\nc 3\n", "# TYPE c gauge\nc 3\n", []Kind{TypeDiffers}},
		{"self-metrics are ignored",
			"# TYPE statsd_exporter_lines_total counter\nstatsd_exporter_lines_total 5\n# TYPE go_goroutines gauge\ngo_goroutines 9\n",
			"# TYPE statsd_sink_series gauge\nstatsd_sink_series 1\n# TYPE statsd_metric_mapper_cache_length gauge\nstatsd_metric_mapper_cache_length 3\n",
			nil},
		{"identical histograms", hist, hist, nil},
		{"float histogram counts equal to integers", hist, strings.Replace(hist, "h_count 3", "h_count 3.0", 1), nil},
		{"histogram bucket differs", hist, strings.Replace(hist, `h_bucket{le="1"} 2`, `h_bucket{le="1"} 1`, 1), []Kind{BucketsDiffer}},
		{"histogram bounds differ", hist, strings.Replace(hist, `le="1"`, `le="2"`, 1), []Kind{BucketsDiffer}},
		{"histogram sum and count differ", hist, strings.NewReplacer("h_sum 5.5", "h_sum 6", "h_count 3", "h_count 4").Replace(hist), []Kind{CountDiffers, SumDiffers}},
		{"identical summaries", summary, summary, nil},
		{"quantile inside the reference's range is an estimator difference", summary, strings.Replace(summary, `s{quantile="0.5"} 2`, `s{quantile="0.5"} 2.5`, 1), nil},
		{"quantile outside the reference's range", summary, strings.Replace(summary, `s{quantile="0.5"} 2`, `s{quantile="0.5"} 1`, 1), []Kind{QuantilesDiffer}},
		{"different quantile objectives", summary, strings.Replace(summary, `quantile="0.99"`, `quantile="0.9"`, 1), []Kind{QuantilesDiffer}},
		{"summary count differs", summary, strings.Replace(summary, "s_count 4", "s_count 5", 1), []Kind{CountDiffers}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diffs := Compare(series(t, tt.ref), series(t, tt.cand))
			var got []Kind
			for _, d := range diffs {
				got = append(got, d.Kind)
			}
			if strings.Join(kindsToStrings(got), ",") != strings.Join(kindsToStrings(tt.want), ",") {
				t.Errorf("got %v, want %v\n%v", got, tt.want, diffs)
			}
		})
	}
}

func kindsToStrings(ks []Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestDeliberateChecks(t *testing.T) {
	byID := map[string]Deliberate{}
	for _, d := range Deliberates() {
		byID[d.ID] = d
	}
	weightedHist := `
# TYPE frac_timer_seconds histogram
frac_timer_seconds_bucket{le="0.05"} 0
frac_timer_seconds_bucket{le="0.1"} 10
frac_timer_seconds_bucket{le="+Inf"} 10
frac_timer_seconds_sum 1
frac_timer_seconds_count 10
`
	copiedHist := strings.NewReplacer(" 10\n", " 9\n", "_sum 1", "_sum 0.9").Replace(weightedHist)
	weightedSummary := `
# TYPE frac_summary_seconds summary
frac_summary_seconds{quantile="0.5"} 0.1
frac_summary_seconds_sum 1.0000000000000002
frac_summary_seconds_count 10.000000000000002
`
	tests := []struct {
		name, id, text, key string
		ok                  bool
	}{
		{"set gauge with the unique count", "sets", "# TYPE set_users gauge\nset_users 3\n", "set_users", true},
		{"set gauge counting duplicates", "sets", "# TYPE set_users gauge\nset_users 4\n", "set_users", false},
		{"set exported as a counter", "sets", "# TYPE set_users counter\nset_users 3\n", "set_users", false},
		{"tagged set", "sets", "# TYPE set_tagged gauge\nset_tagged{env=\"prod\"} 2\n", `set_tagged{env="prod"}`, true},
		{"weighted histogram", "sample-weighted-timers", weightedHist, "frac_timer_seconds", true},
		{"histogram observed int(1/r) times", "sample-weighted-timers", copiedHist, "frac_timer_seconds", false},
		{"weighted summary", "sample-weighted-timers", weightedSummary, "frac_summary_seconds", true},
		{"summary with a wrong sum", "sample-weighted-timers", strings.Replace(weightedSummary, "_sum 1.0000000000000002", "_sum 0.9", 1), "frac_summary_seconds", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := series(t, tt.text)[tt.key]
			if s == nil {
				t.Fatalf("series %s not parsed", tt.key)
			}
			err := byID[tt.id].Check(nil, s)
			if (err == nil) != tt.ok {
				t.Errorf("Check = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestDeliberateAppliesOnlyToItsFamilies(t *testing.T) {
	for _, e := range Deliberates() {
		if e.Applies(Difference{Family: "some_other_family", Kind: e.Kinds[0]}) {
			t.Errorf("%s applies to a family outside its list", e.ID)
		}
		if e.Applies(Difference{Family: e.Families[0], Kind: TypeDiffers}) {
			t.Errorf("%s explains a type difference", e.ID)
		}
	}
}

func TestLoadCasesRejectsEmptyLines(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/c/lines.txt", "a:1|c\\n\n"); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCases(dir)
	if err == nil || !strings.Contains(err.Error(), "lines.txt:1") {
		t.Fatalf("err = %v, want one naming lines.txt:1", err)
	}
}

func TestCorpusLineCount(t *testing.T) {
	dir := t.TempDir()
	if err := writeFile(dir+"/c/lines.txt", "# comment\na:1|c\\nb:2|c\n\nc:1|g\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/c/tcp.txt", "d:1|c\n"); err != nil {
		t.Fatal(err)
	}
	cases, err := LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := cases[0]
	if len(c.Datagrams) != 2 || c.Lines() != 4 || c.MappingFile != "" {
		t.Errorf("datagrams=%q lines=%d mapping=%q", c.Datagrams, c.Lines(), c.MappingFile)
	}
}

// FuzzLoadCases feeds arbitrary lines.txt content to the corpus loader: it
// must return a case or an error naming the file, never panic, and a loaded
// case's line count must match its datagrams.
func FuzzLoadCases(f *testing.F) {
	f.Add("a:1|c\\nb:2|c\n# comment\n\nc:1|g\n")
	f.Add("\\n\n")
	f.Add("#\n# \n")
	f.Fuzz(func(t *testing.T, content string) {
		dir := t.TempDir()
		if err := writeFile(dir+"/c/lines.txt", content); err != nil {
			t.Fatal(err)
		}
		cases, err := LoadCases(dir)
		if err != nil {
			if !strings.Contains(err.Error(), "lines.txt") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		n := 0
		for _, d := range cases[0].Datagrams {
			n += len(strings.Split(string(d), "\n"))
		}
		if n != cases[0].Lines() {
			t.Fatalf("Lines() = %d, counted %d", cases[0].Lines(), n)
		}
	})
}
