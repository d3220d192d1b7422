package mapping

import (
	"regexp"
	"strings"

	"github.com/hopwatch/hopwatch/proxy/stats"
	"github.com/hopwatch/hopwatch/sink/statsd"
)

// EnvoyBuckets are Envoy's default histogram buckets, in milliseconds, as
// the proxy's catalogue configures them (stats.DefaultBuckets).
var EnvoyBuckets = stats.DefaultBuckets()

// Envoy tag names (Envoy's source/common/config/well_known_names.h), as
// Prometheus label names.
const (
	TagClusterName       = "envoy_cluster_name"
	TagResponseCode      = "envoy_response_code"
	TagResponseCodeClass = "envoy_response_code_class"
	TagHTTPConnManager   = "envoy_http_conn_manager_prefix"
	TagListenerAddress   = "envoy_listener_address"
	TagVirtualHost       = "envoy_virtual_host"
	TagVirtualCluster    = "envoy_virtual_cluster"
	TagRoute             = "envoy_route"
	TagWorkerID          = "envoy_worker_id"
	TagUserAgent         = "envoy_http_user_agent"
	TagFaultCluster      = "envoy_fault_downstream_cluster"
	TagRDSRouteConfig    = "envoy_rds_route_config"
)

// Envoy maps flat Envoy StatsD names (`envoy.cluster.backend.upstream_rq_200`)
// and DogStatsD names (`envoy.cluster.upstream_rq` with tags) to the names
// and labels of Envoy's /stats/prometheus.
//
// Stats in the proxy's catalogue (proxy/stats.Catalogue) map to exactly
// the name and labels the catalogue gives them; any other stat (from a
// real Envoy) goes through Envoy's well-known tag extractors.
type Envoy struct {
	// Prefix is the StatsD prefix the proxy adds ("envoy").
	Prefix string
	cat    *catalogueTables
}

// NewEnvoy returns the preset with the default "envoy" prefix.
func NewEnvoy() *Envoy {
	return &Envoy{Prefix: "envoy", cat: newCatalogueTables(stats.Catalogue())}
}

var (
	reCode      = regexp.MustCompile(`_rq(_(\d{3}))$`)
	reCodeClass = regexp.MustCompile(`_rq_((\d))xx$`)
	reListener  = regexp.MustCompile(`^listener\.(((?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+|[^.]+)\.)`)
	reWorker    = regexp.MustCompile(`^(?:listener\.(?:(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[[a-fA-F_\d]+\])_\d+|[^.]+)|server|listener_manager|thread_local_cluster_manager)\.(worker_(\d+)\.)`)
	reListHTTP  = regexp.MustCompile(`^listener\..*?\.http\.(([^.]+)\.)`)
	reRDS       = regexp.MustCompile(`^http\.[^.]+\.rds\.(([\w\-./]+)\.)\w+?$`)
)

// span is a byte range of the stat name to cut out.
type span struct{ from, to int }

// Map returns the preset's result, or nil when name is not an Envoy stat.
func (e *Envoy) Map(name string, t statsd.Type) *Result {
	stat, ok := strings.CutPrefix(name, e.Prefix+".")
	if !ok || stat == "" {
		return nil
	}
	if n, labels, zeros, ok := e.cat.lookup(stat); ok {
		r := envoyResult(n, labels, t)
		r.Zeros = zeros
		return r
	}
	return e.extract(stat, t)
}

// envoyResult is the preset's result for a Prometheus name and labels
// (sorted): timers stay in milliseconds, with Envoy's buckets.
func envoyResult(name string, labels []Label, t statsd.Type) *Result {
	r := &Result{
		Matched: true,
		Name:    name,
		Labels:  labels,
		Help:    DefaultHelp,
		Summary: SummaryOptions{Objectives: defaultObjectives},
	}
	if t.IsObserver() {
		r.Observer = ObserverHistogram
		r.Buckets = EnvoyBuckets
		r.KeepMilliseconds = true
	}
	return r
}

// extract applies Envoy's well-known tag extractors to a stat that is not
// in the catalogue.
func (e *Envoy) extract(stat string, t statsd.Type) *Result {
	x := &extraction{stat: stat}
	if m := reCode.FindStringSubmatchIndex(stat); m != nil {
		x.addMatch(TagResponseCode, m)
	} else if m := reCodeClass.FindStringSubmatchIndex(stat); m != nil {
		x.addMatch(TagResponseCodeClass, m)
	}
	first, _, _ := strings.Cut(stat, ".")
	switch first {
	case "cluster":
		if from, to, ok := e.clusterName(stat, x.cut); ok {
			x.add(TagClusterName, stat[from:to-1], from, to)
		}
	case "http":
		x.http()
	case "listener":
		x.listener()
	case "server", "listener_manager", "thread_local_cluster_manager":
		if m := reWorker.FindStringSubmatchIndex(stat); m != nil {
			x.addMatch(TagWorkerID, m)
		}
	case "vhost":
		x.vhost()
	case "tcp", "udp", "ratelimit", "mongo", "thrift", "redis", "dns_filter", "connection_limit", "local_rate_limit":
		if v, from, ok := segment(stat, 1); ok && strings.Count(stat, ".") >= 2 {
			x.add("envoy_"+first+"_prefix", v, from, from+len(v)+1)
		}
	}
	sortLabels(x.labels)
	return envoyResult(x.name(), x.labels, t)
}

// extraction is the tags found in one stat so far, and the spans of the
// stat's name that held their values.
type extraction struct {
	stat   string
	cut    []span
	labels []Label
}

// add records tag=value, taken from stat[from:to].
func (x *extraction) add(tag, value string, from, to int) {
	x.labels = append(x.labels, Label{Name: tag, Value: value})
	x.cut = append(x.cut, span{from, to})
}

// addMatch records tag from a regexp match whose first group is the span
// to cut and whose second is the value.
func (x *extraction) addMatch(tag string, m []int) {
	x.add(tag, x.stat[m[4]:m[5]], m[2], m[3])
}

// http extracts http.<conn manager>. and, below it, the user agent, fault
// cluster and RDS route config.
func (x *extraction) http() {
	stat := x.stat
	v, from, ok := segment(stat, 1)
	if !ok {
		return
	}
	x.add(TagHTTPConnManager, v, from, from+len(v)+1)
	for _, sub := range []struct{ word, tag string }{{"user_agent", TagUserAgent}, {"fault", TagFaultCluster}} {
		if w, wf, ok := segment(stat, 2); ok && w == sub.word {
			if v, f, ok := segment(stat, 3); ok && strings.Count(stat[wf:], ".") >= 2 {
				x.add(sub.tag, v, f, f+len(v)+1)
			}
		}
	}
	if m := reRDS.FindStringSubmatchIndex(stat); m != nil {
		x.addMatch(TagRDSRouteConfig, m)
	}
}

// listener extracts a listener's conn manager, worker and address.
func (x *extraction) listener() {
	stat := x.stat
	if m := reListHTTP.FindStringSubmatchIndex(stat); m != nil {
		x.addMatch(TagHTTPConnManager, m)
	}
	if m := reWorker.FindStringSubmatchIndex(stat); m != nil {
		x.addMatch(TagWorkerID, m)
	}
	if m := reListener.FindStringSubmatchIndex(stat); m != nil && stat[m[4]:m[5]] != "admin" && m[3] < len(stat) {
		x.addMatch(TagListenerAddress, m)
	}
}

// vhost extracts vhost.<virtual host>. and, below it, the virtual cluster
// or route.
func (x *extraction) vhost() {
	stat := x.stat
	v, from, ok := segment(stat, 1)
	if !ok || strings.Count(stat, ".") < 2 {
		return
	}
	x.add(TagVirtualHost, v, from, from+len(v)+1)
	w, _, ok := segment(stat, 2)
	if !ok || (w != "vcluster" && w != "route") {
		return
	}
	if v, f, ok := segment(stat, 3); ok && strings.Count(stat, ".") >= 4 {
		tag := TagVirtualCluster
		if w == "route" {
			tag = TagRoute
		}
		x.add(tag, v, f, f+len(v)+1)
	}
}

// name is the stat's name with the extracted values cut out, in order,
// sanitized and prefixed "envoy_".
func (x *extraction) name() string {
	stat := x.stat
	out := make([]byte, 0, len(stat)+6)
	out = append(out, "envoy_"...)
	sortSpans(x.cut)
	pos := 0
	for _, c := range x.cut {
		if c.from < pos {
			continue // overlapping extractors: the first one wins
		}
		out = appendSanitized(out, stat[pos:c.from])
		pos = c.to
	}
	out = appendSanitized(out, stat[pos:])
	return string(out)
}

// clusterName finds `<name>.` after "cluster.": the shortest name that leaves
// a catalogued cluster stat (with any circuit breaker priority), else
// Envoy's rule (the first segment). No name is extracted when the whole
// rest is already such a stat (DogStatsD input, where the cluster name is
// a tag).
func (e *Envoy) clusterName(stat string, cut []span) (from, to int, ok bool) {
	if !strings.HasPrefix(stat, "cluster.") {
		return 0, 0, false // "envoy.cluster" alone
	}
	rest := stat[len("cluster."):]
	// The stat as it reads after the response code is removed.
	end := len(rest)
	for _, c := range cut {
		if c.from-len("cluster.") < end {
			end = c.from - len("cluster.")
		}
	}
	segs := strings.Split(rest[:end], ".")
	if len(segs) < 2 {
		return 0, 0, false
	}
	if e.cat.knownClusterStat(segs) {
		return 0, 0, false
	}
	offset := len("cluster.")
	for i := 1; i < len(segs); i++ {
		if e.cat.knownClusterStat(segs[i:]) {
			n := len(strings.Join(segs[:i], "."))
			return offset, offset + n + 1, true
		}
	}
	return offset, offset + len(segs[0]) + 1, true
}

// segment returns the i-th dot-separated segment and its offset, if the
// name has more segments after it.
func segment(s string, i int) (string, int, bool) {
	off := 0
	for ; i > 0; i-- {
		j := strings.IndexByte(s[off:], '.')
		if j < 0 {
			return "", 0, false
		}
		off += j + 1
	}
	j := strings.IndexByte(s[off:], '.')
	if j <= 0 {
		return "", 0, false
	}
	return s[off : off+j], off, true
}

func sortSpans(s []span) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].from < s[j-1].from; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func sortLabels(l []Label) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && l[j].Name < l[j-1].Name; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// appendSanitized applies Envoy's Prometheus name sanitising: every byte
// that is not [a-zA-Z0-9_] becomes '_'.
func appendSanitized(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if validByte(s[i]) {
			dst = append(dst, s[i])
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}
