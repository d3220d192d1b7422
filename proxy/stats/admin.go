package stats

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// statsQuery is the parsed query of /stats and /stats/prometheus.
type statsQuery struct {
	filter   *regexp.Regexp
	usedOnly bool
	json     bool
}

func parseQuery(r *http.Request, allowFormat bool) (statsQuery, error) {
	var q statsQuery
	v := r.URL.Query()
	if f := v.Get("filter"); f != "" {
		re, err := regexp.Compile(f)
		if err != nil {
			return q, fmt.Errorf("filter: invalid regex %q: %w", f, err)
		}
		q.filter = re
	}
	_, q.usedOnly = v["usedonly"]
	if allowFormat {
		switch f := v.Get("format"); f {
		case "", "text":
		case "json":
			q.json = true
		case "prometheus":
		default:
			return q, fmt.Errorf("format: %q is not one of text, json, prometheus", f)
		}
	}
	return q, nil
}

func (q statsQuery) show(name string, used bool) bool {
	if q.usedOnly && !used {
		return false
	}
	return q.filter == nil || q.filter.MatchString(name)
}

// visible reports whether a stat exists for listings at all: preallocated
// per-code counters appear once they have counted something.
func (c *Counter) visible() bool { return !c.hideUntilUsed || c.Value() != 0 }

// StatsHandler serves Envoy's /stats: "name: value" lines sorted by name,
// then histograms as "name: P0(nan,v) P25(nan,v) …" (cumulative quantiles
// estimated from the buckets). Query parameters: filter=<regex> (RE2,
// matched against the flat name; a bad regex is a 400 naming the error),
// usedonly (only stats that changed from zero / were set), and
// format=json (Envoy's {"stats":[…]} shape) or format=prometheus.
func (s *Store) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") == "prometheus" {
			s.PrometheusHandler().ServeHTTP(w, r)
			return
		}
		q, err := parseQuery(r, true)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.refreshServer()
		counters, gauges, hists := s.lists()
		var vals []nv
		for _, c := range counters {
			if v := c.Value(); c.visible() && q.show(c.name, v != 0) {
				vals = append(vals, nv{c.name, v})
			}
		}
		for _, g := range gauges {
			if q.show(g.name, g.Used()) {
				vals = append(vals, nv{g.name, g.Value()})
			}
		}
		slices.SortFunc(vals, func(a, b nv) int { return compareStatNames(a.name, b.name) })
		var hs []*Histogram
		snaps := map[*Histogram]Snapshot{}
		for _, h := range hists {
			snap := h.Snapshot()
			if q.show(h.name, snap.Count() != 0) {
				hs = append(hs, h)
				snaps[h] = snap
			}
		}
		slices.SortFunc(hs, func(a, b *Histogram) int { return compareStatNames(a.name, b.name) })

		if q.json {
			writeStatsJSON(w, vals, hs, snaps)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		bw := bufio.NewWriter(w)
		for _, v := range vals {
			bw.WriteString(v.name)
			bw.WriteString(": ")
			bw.WriteString(strconv.FormatUint(v.value, 10))
			bw.WriteByte('\n')
		}
		for _, h := range hs {
			bw.WriteString(h.name)
			bw.WriteString(": ")
			snap := snaps[h]
			if snap.Count() == 0 {
				bw.WriteString("No recorded values\n")
				continue
			}
			for i, p := range envoyQuantiles {
				if i > 0 {
					bw.WriteByte(' ')
				}
				v, _ := snap.Quantile(p / 100)
				fmt.Fprintf(bw, "P%s(nan,%s)", strconv.FormatFloat(p, 'g', -1, 64), strconv.FormatFloat(v, 'g', 6, 64))
			}
			bw.WriteByte('\n')
		}
		_ = bw.Flush()
	})
}

// envoyQuantiles are the quantiles (in percent) Envoy's /stats prints.
var envoyQuantiles = []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100}

// PrometheusHandler serves /stats/prometheus exactly as Envoy's
// PrometheusStatsFormatter renders it: counters, then gauges, then
// histograms; within each, one group per tag-extracted name (sorted), with
// a "# TYPE envoy_<name> <type>" line, one line per stat sorted by its flat
// name, and a blank line. Counters keep Envoy's names (no _total suffix).
// Histograms are in milliseconds: _bucket{…,le="<bound>"} cumulative counts
// with bounds printed as %.32g, a le="+Inf" bucket, _sum and _count.
// filter and usedonly work as for /stats.
//
// A client that asks for OpenMetrics by name in its Accept header (as
// Prometheus does when it scrapes) gets OpenMetrics instead, with the
// histogram buckets' exemplars; see writeOpenMetrics for how the series
// names stay the same. Any other client, */* included, gets Envoy's text.
func (s *Store) PrometheusHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r, false)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		om, contentType := negotiateExposition(r.Header)
		s.refreshServer()
		counters, gauges, hists := s.lists()
		w.Header().Set("Content-Type", contentType)
		bw := bufio.NewWriter(w)

		var cs []*meta
		cv := map[*meta]uint64{}
		for _, c := range counters {
			if v := c.Value(); c.visible() && q.show(c.name, v != 0) {
				cs = append(cs, &c.meta)
				cv[&c.meta] = v
			}
		}
		writeGroups(bw, cs, promCounterType(om), om, func(m *meta) {
			writeSeries(bw, m.promName, m.promLabels, "", strconv.FormatUint(cv[m], 10))
		})

		var gs []*meta
		gv := map[*meta]uint64{}
		for _, g := range gauges {
			if q.show(g.name, g.Used()) {
				gs = append(gs, &g.meta)
				gv[&g.meta] = g.Value()
			}
		}
		writeGroups(bw, gs, "gauge", om, func(m *meta) {
			writeSeries(bw, m.promName, m.promLabels, "", strconv.FormatUint(gv[m], 10))
		})

		var hs []*meta
		hv := map[*meta]Snapshot{}
		hh := map[*meta]*Histogram{}
		for _, h := range hists {
			snap := h.Snapshot()
			if q.show(h.name, snap.Count() != 0) {
				hs = append(hs, &h.meta)
				hv[&h.meta] = snap
				hh[&h.meta] = h
			}
		}
		writeGroups(bw, hs, "histogram", om, func(m *meta) {
			snap := hv[m]
			cum := snap.Cumulative()
			bucket := func(i int, count uint64) string {
				v := strconv.FormatUint(count, 10)
				if om {
					v = appendExemplar(v, hh[m], i)
				}
				return v
			}
			for i, b := range snap.Bounds {
				writeSeries(bw, m.promName+"_bucket", m.promLabels, `le="`+strconv.FormatFloat(b, 'g', 32, 64)+`"`, bucket(i, cum[i]))
			}
			writeSeries(bw, m.promName+"_bucket", m.promLabels, `le="+Inf"`, bucket(len(snap.Bounds), snap.Count()))
			writeSeries(bw, m.promName+"_sum", m.promLabels, "", strconv.FormatFloat(float64(snap.Sum()), 'g', 32, 64))
			writeSeries(bw, m.promName+"_count", m.promLabels, "", strconv.FormatUint(snap.Count(), 10))
		})
		if om {
			bw.WriteString("# EOF\n")
		}
		_ = bw.Flush()
	})
}

func writeSeries(bw *bufio.Writer, name, labels, extra, value string) {
	bw.WriteString(name)
	bw.WriteByte('{')
	bw.WriteString(labels)
	if extra != "" {
		if labels != "" {
			bw.WriteByte(',')
		}
		bw.WriteString(extra)
	}
	bw.WriteString("} ")
	bw.WriteString(value)
	bw.WriteByte('\n')
}

// writeGroups writes one "# TYPE" group per tag-extracted name, each
// followed by a blank line in Envoy's text format (OpenMetrics allows none).
func writeGroups(bw *bufio.Writer, ms []*meta, typ string, om bool, line func(*meta)) {
	slices.SortFunc(ms, func(a, b *meta) int {
		if c := compareStatNames(a.tagExtracted, b.tagExtracted); c != 0 {
			return c
		}
		return compareStatNames(a.name, b.name)
	})
	for i := 0; i < len(ms); {
		j := i
		for j < len(ms) && ms[j].tagExtracted == ms[i].tagExtracted {
			j++
		}
		fmt.Fprintf(bw, "# TYPE %s %s\n", ms[i].promName, typ)
		for _, m := range ms[i:j] {
			line(m)
		}
		if !om {
			bw.WriteByte('\n')
		}
		i = j
	}
}

// compareStatNames orders names segment by segment, as Envoy's symbol
// table does (so "a.b" sorts before "a-b.c", unlike a plain string
// comparison).
func compareStatNames(a, b string) int {
	for {
		as, arest, aok := strings.Cut(a, ".")
		bs, brest, bok := strings.Cut(b, ".")
		if c := strings.Compare(as, bs); c != 0 {
			return c
		}
		switch {
		case !aok && !bok:
			return 0
		case !aok:
			return -1
		case !bok:
			return 1
		}
		a, b = arest, brest
	}
}

// nv is one counter or gauge in a /stats listing.
type nv struct {
	name  string
	value uint64
}

// writeStatsJSON writes a /stats listing in Envoy's {"stats":[…]} shape.
func writeStatsJSON(w http.ResponseWriter, vals []nv, hs []*Histogram, snaps map[*Histogram]Snapshot) {
	w.Header().Set("Content-Type", "application/json")
	type jsonQuantile struct {
		Interval   *float64 `json:"interval"`
		Cumulative *float64 `json:"cumulative"`
	}
	type jsonHist struct {
		Name   string         `json:"name"`
		Values []jsonQuantile `json:"values"`
	}
	stats := make([]any, 0, len(vals)+1)
	for _, v := range vals {
		stats = append(stats, map[string]any{"name": v.name, "value": v.value})
	}
	if len(hs) > 0 {
		computed := make([]jsonHist, 0, len(hs))
		for _, h := range hs {
			jh := jsonHist{Name: h.name}
			for _, p := range envoyQuantiles {
				var jq jsonQuantile
				if v, ok := snaps[h].Quantile(p / 100); ok {
					jq.Cumulative = &v
				}
				jh.Values = append(jh.Values, jq)
			}
			computed = append(computed, jh)
		}
		stats = append(stats, map[string]any{"histograms": map[string]any{
			"supported_quantiles": envoyQuantiles,
			"computed_quantiles":  computed,
		}})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	_ = enc.Encode(map[string]any{"stats": stats})
}
