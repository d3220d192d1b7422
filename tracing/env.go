package tracing

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The OTEL_* environment variables Resolve reads. OTEL_SDK_DISABLED is read
// by Setup. The OTLP exporter itself still reads the ones Resolve leaves
// alone, such as OTEL_EXPORTER_OTLP_HEADERS and _CERTIFICATE.
const (
	EnvServiceName        = "OTEL_SERVICE_NAME"
	EnvResourceAttributes = "OTEL_RESOURCE_ATTRIBUTES"
	EnvEndpoint           = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint     = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol           = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol     = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvInsecure           = "OTEL_EXPORTER_OTLP_INSECURE"
	EnvTracesInsecure     = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
	EnvSampler            = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg         = "OTEL_TRACES_SAMPLER_ARG"
	EnvPropagators        = "OTEL_PROPAGATORS"
	EnvBSPMaxQueueSize    = "OTEL_BSP_MAX_QUEUE_SIZE"
	EnvBSPMaxExportBatch  = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
	EnvBSPScheduleDelay   = "OTEL_BSP_SCHEDULE_DELAY"
	EnvBSPExportTimeout   = "OTEL_BSP_EXPORT_TIMEOUT"
	EnvSDKDisabled        = "OTEL_SDK_DISABLED"
)

// Resolve returns cfg with every unset field taken from the environment (read
// through lookupEnv, normally os.LookupEnv) or else from the defaults: set
// fields win over OTEL_* variables, which win over defaults. An empty
// variable counts as unset, as the OpenTelemetry specification says. Only
// InstanceID may stay empty; Setup generates one.
//
// Errors name the field or the variable at fault.
func Resolve(cfg Config, lookupEnv func(string) (string, bool)) (Config, error) {
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	r := &resolver{lookupEnv: lookupEnv}
	out := cfg
	out.Propagators = slices.Clone(cfg.Propagators)
	r.resource(&out)
	if out.Protocol == "" {
		out.Protocol = r.protocol()
	}
	if out.Endpoint == "" {
		out.Endpoint = r.endpoint(out.Protocol)
	}
	if out.Insecure == nil {
		out.Insecure = r.insecure(out.Endpoint)
	}
	if out.SamplingRatio == nil {
		ratio, err := samplerRatioFromEnv(r.env(EnvSampler), r.env(EnvSamplerArg))
		r.fail(err)
		out.SamplingRatio = &ratio
	}
	if len(out.Propagators) == 0 {
		out.Propagators = r.propagators()
	}
	r.batch(&out.Batch)
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	return out, nil
}

// resolver reads the OTEL_* variables for Resolve and collects what is
// wrong with them, so that one run reports every bad variable.
type resolver struct {
	lookupEnv func(string) (string, bool)
	errs      []error
}

// env is the variable's value, trimmed; "" when unset or empty.
func (r *resolver) env(name string) string {
	if r.lookupEnv == nil {
		return ""
	}
	v, _ := r.lookupEnv(name)
	return strings.TrimSpace(v)
}

// first is the first of the named variables that is set, and its value.
func (r *resolver) first(names ...string) (name, value string) {
	for _, n := range names {
		if v := r.env(n); v != "" {
			return n, v
		}
	}
	return "", ""
}

// fail records err, if any.
func (r *resolver) fail(err error) {
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// resource puts the environment's attributes under the configured ones
// and takes the service name and instance ID from them when out has none.
func (r *resolver) resource(out *Config) {
	attrs := map[string]string{}
	if v := r.env(EnvResourceAttributes); v != "" {
		parsed, err := ParseResourceAttributes(v)
		if err != nil {
			r.fail(fmt.Errorf("%s: %w", EnvResourceAttributes, err))
		}
		maps.Copy(attrs, parsed)
	}
	maps.Copy(attrs, out.ResourceAttributes)
	if out.ServiceName == "" {
		out.ServiceName = cmp.Or(r.env(EnvServiceName), attrs["service.name"], DefaultServiceName)
	}
	if out.InstanceID == "" {
		out.InstanceID = attrs["service.instance.id"]
	}
	// Those two live in their own fields; keeping them in the map too would
	// leave two sources for one attribute.
	delete(attrs, "service.name")
	delete(attrs, "service.instance.id")
	out.ResourceAttributes = attrs
}

// protocol is the OTLP protocol from the environment, or the default.
func (r *resolver) protocol() string {
	name, v := r.first(EnvTracesProtocol, EnvProtocol)
	switch v {
	case "":
		return ProtocolGRPC
	case ProtocolGRPC, ProtocolHTTP:
		return v
	default:
		r.fail(fmt.Errorf("%s: %q is not supported; use %q or %q", name, v, ProtocolGRPC, ProtocolHTTP))
		return ProtocolGRPC
	}
}

// endpoint is the OTLP endpoint from the environment, or the protocol's
// default.
func (r *resolver) endpoint(protocol string) string {
	if v := r.env(EnvTracesEndpoint); v != "" {
		if _, err := parseEndpoint(v); err != nil {
			r.fail(fmt.Errorf("%s: %w", EnvTracesEndpoint, err))
		}
		return v
	}
	if v := r.env(EnvEndpoint); v != "" {
		ep, err := parseEndpoint(v)
		if err != nil {
			r.fail(fmt.Errorf("%s: %w", EnvEndpoint, err))
		}
		// The generic variable is a base URL: the signal's path is
		// appended for HTTP (the specification's rule), while gRPC
		// ignores paths.
		if protocol == ProtocolHTTP && ep.scheme != "" {
			v = ep.scheme + "://" + ep.hostPort + strings.TrimSuffix(ep.path, "/") + "/v1/traces"
		}
		return v
	}
	if protocol == ProtocolHTTP {
		return "http://localhost:4318/v1/traces"
	}
	return "localhost:4317"
}

// insecure is the insecure setting from the environment or, without one,
// true for an http:// or loopback endpoint; nil when the endpoint is
// invalid (an error already says so).
func (r *resolver) insecure(endpoint string) *bool {
	if name, v := r.first(EnvTracesInsecure, EnvInsecure); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			r.fail(fmt.Errorf("%s: %q is not true or false", name, v))
		}
		return &b
	}
	ep, err := parseEndpoint(endpoint)
	if err != nil {
		return nil
	}
	host := ep.hostPort[:strings.LastIndexByte(ep.hostPort, ':')]
	b := ep.scheme == "http" || (ep.scheme == "" && isLoopbackHost(host))
	return &b
}

// propagators is the propagator list from the environment, or the
// default; unknown names are errors and left out.
func (r *resolver) propagators() []string {
	v := r.env(EnvPropagators)
	if v == "" {
		return DefaultPropagators()
	}
	var out []string
	for i, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		if _, ok := propagatorsByName[name]; !ok {
			r.fail(fmt.Errorf("%s: entry %d %q is not supported; use one of %s", EnvPropagators, i+1, name, propagatorNames()))
			continue
		}
		out = append(out, name)
	}
	return out
}

// batch fills the batch processor's unset settings from the environment
// or the defaults.
func (r *resolver) batch(b *BatchConfig) {
	r.positiveInt(&b.MaxQueueSize, EnvBSPMaxQueueSize, DefaultMaxQueueSize)
	r.positiveInt(&b.MaxExportBatchSize, EnvBSPMaxExportBatch, DefaultMaxExportBatchSize)
	// The SDK clamps the same way: a batch can never be bigger than the queue.
	b.MaxExportBatchSize = min(b.MaxExportBatchSize, b.MaxQueueSize)
	r.millis(&b.ScheduleDelay, EnvBSPScheduleDelay, DefaultScheduleDelay)
	r.millis(&b.ExportTimeout, EnvBSPExportTimeout, DefaultExportTimeout)
}

// positiveInt sets an unset *dst from the named variable, else to def.
func (r *resolver) positiveInt(dst *int, name string, def int) {
	if *dst != 0 {
		return
	}
	*dst = def
	if n, ok := r.positive(name, "integer"); ok {
		*dst = n
	}
}

// millis sets an unset *dst from the named variable, in milliseconds,
// else to def.
func (r *resolver) millis(dst *Duration, name string, def time.Duration) {
	if *dst != 0 {
		return
	}
	*dst = Duration(def)
	if n, ok := r.positive(name, "number of milliseconds"); ok {
		*dst = Duration(time.Duration(n) * time.Millisecond)
	}
}

// positive is the named variable as a positive integer (what it counts
// names it in the error); false when unset or, with an error, invalid.
func (r *resolver) positive(name, what string) (int, bool) {
	v := r.env(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		r.fail(fmt.Errorf("%s: %q is not a positive %s", name, v, what))
		return 0, false
	}
	return n, true
}

// samplerRatioFromEnv maps OTEL_TRACES_SAMPLER and its argument to a ratio.
// hopwatch always samples parent-based, so the plain and parentbased_ forms
// of a sampler mean the same here; the others (jaeger_remote, xray) are
// refused rather than silently replaced.
func samplerRatioFromEnv(sampler, arg string) (float64, error) {
	switch sampler {
	case "", "always_on", "parentbased_always_on":
		return DefaultSamplingRatio, nil
	case "always_off", "parentbased_always_off":
		return 0, nil
	case "traceidratio", "parentbased_traceidratio":
		if arg == "" {
			return 1, nil // the specification's default argument
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(r >= 0 && r <= 1) {
			return DefaultSamplingRatio, fmt.Errorf("%s: %q is not a ratio in [0, 1]", EnvSamplerArg, arg)
		}
		return r, nil
	}
	return DefaultSamplingRatio, fmt.Errorf("%s: %q is not supported; use always_on, always_off, traceidratio or their parentbased_ forms", EnvSampler, sampler)
}

// ParseResourceAttributes parses the OTEL_RESOURCE_ATTRIBUTES format:
// comma-separated key=value pairs whose keys and values are percent-encoded
// (the W3C Baggage octet rules). Spaces around keys and values are trimmed.
// A later duplicate key wins. An empty list is valid; an entry without '=',
// an empty key or a bad percent escape is an error naming the entry.
func ParseResourceAttributes(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for i, entry := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("entry %d %q: want key=value", i+1, entry)
		}
		key, err := url.PathUnescape(strings.TrimSpace(k))
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: key: %w", i+1, entry, err)
		}
		if key == "" {
			return nil, fmt.Errorf("entry %d %q: empty key", i+1, entry)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: value: %w", i+1, entry, err)
		}
		out[key] = val
	}
	return out, nil
}
