package stats

import (
	"reflect"
	"strconv"
	"strings"
)

// Envoy's well-known tag names (source/common/config/well_known_names.h)
// for the tags hopwatch emits. Prometheus label names are these with '.'
// replaced by '_' (envoy_cluster_name).
const (
	TagClusterName       = "envoy.cluster_name"
	TagResponseCode      = "envoy.response_code"
	TagResponseCodeClass = "envoy.response_code_class"
	TagHTTPConnManager   = "envoy.http_conn_manager_prefix"
	TagListenerAddress   = "envoy.listener_address"
	TagVirtualHost       = "envoy.virtual_host"
	TagRoute             = "envoy.route"
	TagTLSCertificate    = "envoy.tls_certificate"
)

// Zone placeholders. They are not tags: Envoy has no zone extractor, so
// zone names stay inside the tag-extracted and Prometheus names.
const (
	ParamFromZone = "from_zone"
	ParamToZone   = "to_zone"
)

// Family is one catalogue entry: a stat name template and everything it
// becomes in each rendering.
type Family struct {
	// Name is the flat Envoy name template, placeholders in braces:
	// cluster.{envoy.cluster_name}.upstream_rq_{envoy.response_code}.
	Name string
	// Kind is counter, gauge or histogram (milliseconds for histograms).
	Kind Kind
	// TagExtractedName is the DogStatsD name (after the sink prefix):
	// cluster.upstream_rq. Zone stats keep {from_zone}.{to_zone} in it.
	TagExtractedName string
	// Tags are the Envoy tag names, in Envoy's extraction order.
	Tags []string
	// PrometheusName is Envoy's /stats/prometheus name:
	// envoy_cluster_upstream_rq (histograms add _bucket, _sum, _count).
	PrometheusName string
	// PrometheusLabels are the label names, in Tags order
	// (envoy_response_code, envoy_cluster_name); histograms add le.
	PrometheusLabels []string
	// Help is a one-line description.
	Help string
	// Hopwatch marks stats that Envoy does not have.
	Hopwatch bool
}

// Catalogue returns every stat family hopwatch emits, in a stable order
// (by scope, then struct field order). It is built from the same typed
// structs the store's constructors fill, so it cannot drift from them.
// The caller owns the returned slice.
func Catalogue() []Family {
	b := builder{catalogue: true, seen: map[string]bool{}}
	for _, sc := range []struct {
		def scopeDef
		typ any
	}{
		{httpScope, &HTTPConnManagerStats{}},
		{listenerScope, &ListenerStats{}},
		{listenerHTTPScope, &ListenerHTTPStats{}},
		{listenerCertScope, &ListenerCertStats{}},
		{clusterScope, &ClusterStats{}},
		{clusterScope, &circuitBreakerRemaining{}},
		{zoneScope, &ZoneStats{}},
		{routeScope, &RouteStats{}},
		{localRateLimitScope, &LocalRateLimitStats{}},
		{serverScope, &ServerStats{}},
		{tracerScope, &TracerStats{}},
		{http2Scope, &HTTP2CodecStats{}},
		{rootScope, &selfStats{}},
	} {
		b.fill(reflect.ValueOf(sc.typ).Elem(), templateScope(sc.def))
	}
	return b.families
}

// scopeDef describes where a typed struct's stats live.
type scopeDef struct {
	flat   string   // flat name prefix template
	ext    string   // tag-extracted prefix template
	params []string // placeholders, in constructor argument order
	tags   []string // which params are tags, in Envoy's extraction order
}

var (
	rootScope     = scopeDef{}
	serverScope   = scopeDef{flat: "server.", ext: "server."}
	tracerScope   = scopeDef{flat: "tracing.opentelemetry.", ext: "tracing.opentelemetry."}
	http2Scope    = scopeDef{flat: "http2.", ext: "http2."}
	clusterScope  = scopeDef{flat: "cluster.{envoy.cluster_name}.", ext: "cluster.", params: []string{TagClusterName}, tags: []string{TagClusterName}}
	zoneScope     = scopeDef{flat: "cluster.{envoy.cluster_name}.zone.{from_zone}.{to_zone}.", ext: "cluster.zone.{from_zone}.{to_zone}.", params: []string{TagClusterName, ParamFromZone, ParamToZone}, tags: []string{TagClusterName}}
	httpScope     = scopeDef{flat: "http.{envoy.http_conn_manager_prefix}.", ext: "http.", params: []string{TagHTTPConnManager}, tags: []string{TagHTTPConnManager}}
	listenerScope = scopeDef{flat: "listener.{envoy.listener_address}.", ext: "listener.", params: []string{TagListenerAddress}, tags: []string{TagListenerAddress}}
	// Envoy extracts the connection manager prefix before the address.
	listenerHTTPScope = scopeDef{flat: "listener.{envoy.listener_address}.http.{envoy.http_conn_manager_prefix}.", ext: "listener.http.", params: []string{TagHTTPConnManager, TagListenerAddress}, tags: []string{TagHTTPConnManager, TagListenerAddress}}
	// Envoy extracts the certificate name before the address.
	listenerCertScope = scopeDef{flat: "listener.{envoy.listener_address}.ssl.certificate.{envoy.tls_certificate}.", ext: "listener.ssl.certificate.", params: []string{TagListenerAddress, TagTLSCertificate}, tags: []string{TagTLSCertificate, TagListenerAddress}}
	routeScope        = scopeDef{flat: "vhost.{envoy.virtual_host}.route.{envoy.route}.", ext: "vhost.route.", params: []string{TagVirtualHost, TagRoute}, tags: []string{TagVirtualHost, TagRoute}}
)

// scope is a scopeDef with values: both the rendered names and the
// templates, so one walk can create stats and describe them.
type scope struct {
	flat, flatT string
	ext, extT   string
	tags        []Tag
}

func (s scope) child(p string) scope {
	return scope{flat: s.flat + p, flatT: s.flatT + p, ext: s.ext + p, extT: s.extT + p, tags: s.tags}
}

// newScope fills def's placeholders with values (sanitized as Envoy does).
func newScope(def scopeDef, values ...string) scope {
	vals := map[string]string{}
	for i, p := range def.params {
		if i < len(values) {
			vals[p] = sanitizeValue(values[i])
		}
	}
	sc := scope{flat: subst(def.flat, vals), flatT: def.flat, ext: subst(def.ext, vals), extT: def.ext}
	for _, t := range def.tags {
		sc.tags = append(sc.tags, Tag{Name: t, Value: vals[t]})
	}
	return sc
}

// templateScope renders def with its placeholders left in place.
func templateScope(def scopeDef) scope {
	sc := scope{flat: def.flat, flatT: def.flat, ext: def.ext, extT: def.ext}
	for _, t := range def.tags {
		sc.tags = append(sc.tags, Tag{Name: t, Value: "{" + t + "}"})
	}
	return sc
}

// FillPlaceholders replaces every {placeholder} in a catalogue template
// (a Family's StatName or PrometheusName, a scope's name) with value(name),
// name being the text between the braces. The proxy fills scopes with tag
// values; dashboards and tests fill them with patterns or sample values.
func FillPlaceholders(tmpl string, value func(name string) string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		b.WriteString(tmpl[:i])
		b.WriteString(value(tmpl[i+1 : i+j]))
		tmpl = tmpl[i+j+1:]
	}
}

func subst(tmpl string, vals map[string]string) string {
	return FillPlaceholders(tmpl, func(name string) string { return vals[name] })
}

// sanitizeValue makes a configured name safe inside a stat name. Envoy
// replaces ':' with '_' (listener 127.0.0.1:80 → 127.0.0.1_80); hopwatch
// also replaces anything that would break a StatsD line or a Prometheus
// label (whitespace, '|', '#', ',', '@', '"', '\\', '=', control bytes).
func sanitizeValue(v string) string {
	ok := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-' || c == '[' || c == ']' || c == '/' || c == '+' || c == '~'
	}
	for i := 0; i < len(v); i++ {
		if !ok(v[i]) {
			b := []byte(v)
			for j := i; j < len(b); j++ {
				if !ok(b[j]) {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return v
}

// prometheusName is Envoy's PrometheusStatsFormatter::metricName: "envoy_"
// plus the tag-extracted name with every byte outside [a-zA-Z0-9_] made '_'.
func prometheusName(extracted string) string {
	return promSanitize("envoy_"+extracted, false)
}

// prometheusLabel sanitizes a tag name into a label name (envoy_cluster_name).
func prometheusLabel(tag string) string { return promSanitize(tag, false) }

// promSanitize replaces bytes outside [a-zA-Z0-9_]; with keepBraces it
// leaves {placeholder} spans alone (for catalogue templates).
func promSanitize(s string, keepBraces bool) string {
	b := []byte(s)
	in := false
	for i, c := range b {
		switch {
		case keepBraces && c == '{':
			in = true
		case keepBraces && c == '}':
			in = false
		case in:
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_':
		default:
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// escapeLabelValue escapes a Prometheus label value. Sanitized values need
// no escaping, but this keeps the exposition valid whatever happens.
func escapeLabelValue(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(v)
}

// builder walks a typed stats struct. With s set it creates the stats and
// assigns them to the fields; with catalogue set it records families.
type builder struct {
	s         *Store
	ignoreCap bool
	collapsed *Counter // collapse counter for code blocks (zones)

	catalogue bool
	seen      map[string]bool
	families  []Family
}

var (
	counterType   = reflect.TypeFor[*Counter]()
	gaugeType     = reflect.TypeFor[*Gauge]()
	histogramType = reflect.TypeFor[*Histogram]()
	codesType     = reflect.TypeFor[*CodeStats]()
)

// spec is one stat to create.
type spec struct {
	kind     Kind
	rel      string // flat suffix
	relT     string // flat suffix template
	relExt   string // tag-extracted suffix
	tag      *Tag   // leading response code tag, if any
	help     string
	hopwatch bool
	hide     bool
}

func (b *builder) fill(v reflect.Value, sc scope) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		switch {
		case f.Tag.Get("stat") != "":
			name := f.Tag.Get("stat")
			var k Kind
			switch f.Type {
			case counterType:
				k = KindCounter
			case gaugeType:
				k = KindGauge
			case histogramType:
				k = KindHistogram
			default:
				panic("stats: field " + t.Name() + "." + f.Name + " has a stat tag but type " + f.Type.String())
			}
			st := b.make(sc, spec{kind: k, rel: name, relT: name, relExt: name, help: f.Tag.Get("help"), hopwatch: f.Tag.Get("hopwatch") == "true"})
			if st != nil {
				v.Field(i).Set(reflect.ValueOf(st))
			}
		case f.Tag.Get("scope") != "":
			b.fill(v.Field(i), sc.child(f.Tag.Get("scope")))
		case f.Type == codesType:
			prefix, _ := f.Tag.Lookup("codes")
			stem := f.Tag.Get("stem")
			if stem == "" {
				stem = "upstream_rq"
			}
			cs := b.codes(sc, prefix+stem, f.Tag.Get("parts"))
			if cs != nil {
				v.Field(i).Set(reflect.ValueOf(cs))
			}
		}
	}
}

// codes builds a response code block; base is e.g. "retry.upstream_rq".
func (b *builder) codes(sc scope, base, parts string) *CodeStats {
	has := func(p string) bool {
		for _, x := range strings.Split(parts, ",") {
			if x == p {
				return true
			}
		}
		return false
	}
	cs := &CodeStats{hasCodes: has("codes"), collapsed: b.collapsed}
	if has("codes") {
		for i, code := range knownCodes {
			c := strconv.Itoa(int(code))
			st := b.make(sc, spec{kind: KindCounter, rel: base + "_" + c, relT: base + "_{" + TagResponseCode + "}", relExt: base,
				tag: &Tag{Name: TagResponseCode, Value: c}, help: "Responses with this specific status code", hide: true})
			if st != nil {
				cs.codes[i] = st.(*Counter)
			}
		}
	}
	if has("classes") {
		for k := 1; k <= 5; k++ {
			c := strconv.Itoa(k)
			st := b.make(sc, spec{kind: KindCounter, rel: base + "_" + c + "xx", relT: base + "_{" + TagResponseCodeClass + "}xx", relExt: base + "_xx",
				tag: &Tag{Name: TagResponseCodeClass, Value: c}, help: "Responses by status class (1xx to 5xx)"})
			if st != nil {
				cs.classes[k-1] = st.(*Counter)
			}
		}
	}
	if has("completed") {
		if st := b.make(sc, spec{kind: KindCounter, rel: base + "_completed", relT: base + "_completed", relExt: base + "_completed", help: "Responses completed"}); st != nil {
			cs.Completed = st.(*Counter)
		}
	}
	if has("time") {
		if st := b.make(sc, spec{kind: KindHistogram, rel: base + "_time", relT: base + "_time", relExt: base + "_time", help: "Response time milliseconds"}); st != nil {
			cs.Time = st.(*Histogram)
		}
	}
	if b.catalogue {
		return nil
	}
	return cs
}

// make creates one stat (store mode) or records its family (catalogue
// mode, returning nil).
func (b *builder) make(sc scope, sp spec) Stat {
	tags := sc.tags
	if sp.tag != nil {
		tags = append([]Tag{*sp.tag}, sc.tags...)
	}
	if b.catalogue {
		name := sc.flatT + sp.relT
		if b.seen[name] {
			return nil
		}
		b.seen[name] = true
		f := Family{Name: name, Kind: sp.kind, TagExtractedName: sc.extT + sp.relExt,
			PrometheusName: promSanitize("envoy_"+sc.extT+sp.relExt, true), Help: sp.help, Hopwatch: sp.hopwatch}
		for _, t := range tags {
			f.Tags = append(f.Tags, t.Name)
			f.PrometheusLabels = append(f.PrometheusLabels, prometheusLabel(t.Name))
		}
		b.families = append(b.families, f)
		return nil
	}
	m := meta{name: sc.flat + sp.rel, tagExtracted: sc.ext + sp.relExt, tags: tags, hideUntilUsed: sp.hide}
	st, err := b.s.register(sp.kind, m, b.ignoreCap)
	if err != nil {
		// Two configured names rendered to the same flat name with different
		// types (only possible with dotted names that mimic stat names). Hand
		// out a detached stat: the caller still works, nothing is exported.
		switch sp.kind {
		case KindCounter:
			return &Counter{meta: m}
		case KindGauge:
			return &Gauge{meta: m}
		default:
			h := b.s.newHistogram(m)
			h.store = nil
			return h
		}
	}
	return st
}
