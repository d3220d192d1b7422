package mapping

import (
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

// The Envoy preset's tables come from proxy/stats.Catalogue, the single
// source of the proxy's stat names, so that every stat the proxy emits
// maps to exactly the Prometheus name and labels the catalogue gives it.

// piece is one part of a name template: literal text, or a placeholder
// (an Envoy tag name, or a zone parameter).
type piece struct {
	lit string
	ph  string
}

// template is a parsed name template such as
// cluster.{envoy.cluster_name}.upstream_rq_{envoy.response_code}.
type template []piece

func parseTemplate(s string) template {
	var t template
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t = append(t, piece{lit: s})
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			t = append(t, piece{lit: s})
			break
		}
		if i > 0 {
			t = append(t, piece{lit: s[:i]})
		}
		t = append(t, piece{ph: s[i+1 : i+j]})
		s = s[i+j+1:]
	}
	return t
}

// lastLit is the literal the template ends with, if any: a cheap filter
// before the full match.
func (t template) lastLit() string {
	if len(t) > 0 && t[len(t)-1].ph == "" {
		return t[len(t)-1].lit
	}
	return ""
}

// captures holds a match's placeholder values, in template order.
type captures struct {
	names  [4]string
	values [4]string
	n      int
}

func (c *captures) get(ph string) (string, bool) {
	for i := range c.n {
		if c.names[i] == ph {
			return c.values[i], true
		}
	}
	return "", false
}

// match matches s against t. Response codes are three digits and code
// classes one digit (as Envoy's extractors); every other placeholder is a
// non-empty string that may contain dots (hopwatch keeps dotted cluster
// and route names whole), tried shortest first, so the leftmost name is
// the shortest that leaves the rest of the template matching. Listener
// addresses follow Envoy's extractor (see reListenerAddr).
func (t template) match(s string, c *captures) bool {
	if len(t) == 0 {
		return s == ""
	}
	p := t[0]
	if p.ph == "" {
		rest, ok := strings.CutPrefix(s, p.lit)
		return ok && t[1:].match(rest, c)
	}
	if c.n == len(c.names) {
		return false
	}
	c.names[c.n] = p.ph
	switch p.ph {
	case stats.TagResponseCode, stats.TagResponseCodeClass:
		n := 3
		if p.ph == stats.TagResponseCodeClass {
			n = 1
		}
		if len(s) < n || !allDigits(s[:n]) {
			return false
		}
		c.values[c.n] = s[:n]
		c.n++
		if t[1:].match(s[n:], c) {
			return true
		}
		c.n--
		return false
	}
	// The next literal bounds the value: try each place it occurs.
	next := ""
	if len(t) > 1 {
		next = t[1].lit
	}
	if next == "" {
		// The value runs to the end (or up to a code, which the
		// catalogue never puts right after a name).
		if s == "" || len(t) > 1 {
			return false
		}
		c.values[c.n] = s
		c.n++
		return true
	}
	for from := 1; from < len(s); {
		i := strings.Index(s[from:], next)
		if i < 0 {
			break
		}
		end := from + i
		c.values[c.n] = s[:end]
		c.n++
		if (p.ph != stats.TagListenerAddress || reListenerAddr.MatchString(s[:end])) && t[1:].match(s[end:], c) {
			return true
		}
		c.n--
		from = end + 1
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// reListenerAddr is what Envoy's listener extractor takes as an address:
// ip_port, [ipv6]_port or one dot-free segment. Anything longer (such as
// 127.0.0.1_80.worker_1) is not a catalogued listener stat.
var reListenerAddr = regexp.MustCompile(`^(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+|[^.]+)$`)

// anyScope indexes the families whose flat name starts with a placeholder.
const anyScope = "{"

// catalogueFamily is one catalogue family compiled for matching.
type catalogueFamily struct {
	flat, ext template
	prom      template // Prometheus name; zone stats keep placeholders
	tags      []string // Envoy tag names, in catalogue order
	labels    []string // their Prometheus label names
	zeros     *Zeros   // the entity's families to create at 0; nil for none
}

// catalogueTables index the catalogue: flat names by their first segment
// (the scope), tag-extracted (DogStatsD) names exactly, or as templates
// when they keep zone placeholders.
type catalogueTables struct {
	flat     map[string][]*catalogueFamily
	extExact map[string]*catalogueFamily
	extTmpl  []*catalogueFamily
	// known are the cluster-scope stats after `cluster.<name>.`, as
	// dot-separated segments with "*" for a zone or circuit breaker
	// priority: the fallback uses them to recognise DogStatsD input,
	// where the cluster name is a tag and not in the name.
	known [][]string
}

func newCatalogueTables(fams []stats.Family) *catalogueTables {
	ct := &catalogueTables{flat: map[string][]*catalogueFamily{}, extExact: map[string]*catalogueFamily{}}
	zeros := zeroSets(fams)
	for _, f := range fams {
		cf := &catalogueFamily{flat: parseTemplate(f.Name), ext: parseTemplate(f.TagExtractedName),
			prom: parseTemplate(f.PrometheusName), tags: f.Tags, labels: f.PrometheusLabels}
		cf.zeros = zeros[entityKey(f.Tags)]
		scope, _, _ := strings.Cut(f.Name, ".")
		if strings.HasPrefix(scope, "{") {
			// Rooted at a tag value (<stat_prefix>.http_local_rate_limit.*):
			// tried for any scope, after the scope's own families.
			scope = anyScope
		}
		ct.flat[scope] = append(ct.flat[scope], cf)
		if len(cf.ext) == 1 && cf.ext[0].ph == "" {
			if _, dup := ct.extExact[f.TagExtractedName]; !dup {
				ct.extExact[f.TagExtractedName] = cf
			}
		} else {
			ct.extTmpl = append(ct.extTmpl, cf)
		}
		if rest, ok := strings.CutPrefix(f.TagExtractedName, "cluster."); ok {
			segs := strings.Split(rest, ".")
			for i, s := range segs {
				if strings.HasPrefix(s, "{") || (i > 0 && segs[i-1] == "circuit_breakers") {
					segs[i] = "*"
				}
			}
			ct.known = append(ct.known, segs)
		}
	}
	return ct
}

// Zeros are the counter and histogram families the catalogue defines for
// one kind of entity (a cluster, a connection manager, a listener, ...):
// those whose tags are exactly the entity's. When the sink first sees a
// series of an entity, it creates these families for it at 0 (see
// sink.Pipeline), so that a panel shows 0 rather than "No data" and
// rate() and increase() see the first increment. Families with a status
// code or class among their tags, and zone families, are left out: which
// codes and zones will appear is not known in advance.
type Zeros struct {
	// Families are the families to create, by Prometheus name.
	Families []ZeroFamily
	// Drop are the labels of the series that found the entity which the
	// entity's own families do not have (envoy_response_code, ...);
	// every other label (the entity's, and extra tags such as node_id)
	// is kept.
	Drop []string
}

// ZeroFamily is one family of Zeros.
type ZeroFamily struct {
	Name      string
	Histogram bool // else a counter
}

// codeTags vary per series of an entity, so they do not identify one.
var codeTags = []string{stats.TagResponseCode, stats.TagResponseCodeClass}

// entityKey names the entity a family's series belong to: its tags
// without the code tags, sorted; "" for families of no entity.
func entityKey(tags []string) string {
	var ts []string
	for _, t := range tags {
		if !slices.Contains(codeTags, t) {
			ts = append(ts, t)
		}
	}
	sort.Strings(ts)
	return strings.Join(ts, "\x00")
}

// zeroSets groups the catalogue's counter and histogram families by
// entity (families whose tags are exactly the entity's, whose names have
// no zone placeholder), and fills in which labels a series of each entity
// may carry beyond them.
func zeroSets(fams []stats.Family) map[string]*Zeros {
	out := map[string]*Zeros{}
	for _, f := range fams {
		key := entityKey(f.Tags)
		if key == "" || f.Kind == stats.KindGauge || strings.Contains(f.PrometheusName, "{") || len(f.Tags) != strings.Count(key, "\x00")+1 {
			continue
		}
		z := out[key]
		if z == nil {
			z = &Zeros{}
			for _, t := range codeTags {
				z.Drop = append(z.Drop, promLabelName(t))
			}
			out[key] = z
		}
		z.Families = append(z.Families, ZeroFamily{Name: f.PrometheusName, Histogram: f.Kind == stats.KindHistogram})
	}
	return out
}

// promLabelName is a tag name as a Prometheus label (envoy.cluster_name →
// envoy_cluster_name).
func promLabelName(tag string) string { return strings.ReplaceAll(tag, ".", "_") }

// lookup matches stat (the name after the prefix) against the catalogue:
// DogStatsD names first (exact, then zone templates), then flat names of
// the stat's scope, then (if none matched) the families rooted at a tag
// value. Among flat matches the shortest leftmost value wins
// (cluster "a" with stat canary.upstream_rq_200 over cluster "a.canary"),
// then catalogue order. It returns the Prometheus name and labels.
func (ct *catalogueTables) lookup(stat string) (name string, labels []Label, zeros *Zeros, ok bool) {
	if cf := ct.extExact[stat]; cf != nil {
		return renderProm(cf.prom, nil), nil, cf.zeros, true
	}
	var c captures
	for _, cf := range ct.extTmpl {
		c = captures{}
		if cf.ext.match(stat, &c) {
			return renderProm(cf.prom, &c), nil, cf.zeros, true
		}
	}
	scope, _, _ := strings.Cut(stat, ".")
	var best *catalogueFamily
	var bestC captures
	own := ct.flat[scope]
	for i, n := 0, len(own)+len(ct.flat[anyScope]); i < n; i++ {
		var cf *catalogueFamily
		if i < len(own) {
			cf = own[i]
		} else if best != nil {
			break // a family of the stat's own scope matched
		} else {
			cf = ct.flat[anyScope][i-len(own)]
		}
		if l := cf.flat.lastLit(); l != "" && !strings.HasSuffix(stat, l) {
			continue
		}
		c = captures{}
		if !cf.flat.match(stat, &c) {
			continue
		}
		if scope == "listener" && c.values[0] == "admin" {
			continue // Envoy's listener extractor leaves the admin listener alone
		}
		if best == nil || len(c.values[0]) < len(bestC.values[0]) {
			best, bestC = cf, c
		}
	}
	if best == nil {
		return "", nil, nil, false
	}
	for i, tag := range best.tags {
		v, _ := bestC.get(tag)
		labels = append(labels, Label{Name: best.labels[i], Value: v})
	}
	sort.Slice(labels, func(i, j int) bool { return labels[i].Name < labels[j].Name })
	return renderProm(best.prom, &bestC), labels, best.zeros, true
}

// renderProm fills a Prometheus name template's placeholders (zones),
// sanitised as Envoy's exposition does.
func renderProm(t template, c *captures) string {
	if len(t) == 1 && t[0].ph == "" {
		return t[0].lit
	}
	var b []byte
	for _, p := range t {
		if p.ph == "" {
			b = append(b, p.lit...)
			continue
		}
		var v string
		if c != nil {
			v, _ = c.get(p.ph)
		}
		b = appendSanitized(b, v)
	}
	return string(b)
}

// knownClusterStat reports whether segs (a name after "cluster.") is a
// catalogued cluster stat.
func (ct *catalogueTables) knownClusterStat(segs []string) bool {
	for _, p := range ct.known {
		if len(p) != len(segs) {
			continue
		}
		match := true
		for i := range p {
			if p[i] != "*" && p[i] != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
