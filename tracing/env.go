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
	env := func(name string) string {
		if lookupEnv == nil {
			return ""
		}
		v, _ := lookupEnv(name)
		return strings.TrimSpace(v)
	}
	first := func(names ...string) (name, value string) {
		for _, n := range names {
			if v := env(n); v != "" {
				return n, v
			}
		}
		return "", ""
	}
	out := cfg
	out.Propagators = slices.Clone(cfg.Propagators)
	var errs []error

	// Resource: the environment's attributes under the configured ones.
	attrs := map[string]string{}
	if v := env(EnvResourceAttributes); v != "" {
		parsed, err := ParseResourceAttributes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvResourceAttributes, err))
		}
		maps.Copy(attrs, parsed)
	}
	maps.Copy(attrs, cfg.ResourceAttributes)
	if out.ServiceName == "" {
		out.ServiceName = cmp.Or(env(EnvServiceName), attrs["service.name"], DefaultServiceName)
	}
	if out.InstanceID == "" {
		out.InstanceID = attrs["service.instance.id"]
	}
	// Those two live in their own fields; keeping them in the map too would
	// leave two sources for one attribute.
	delete(attrs, "service.name")
	delete(attrs, "service.instance.id")
	out.ResourceAttributes = attrs

	if out.Protocol == "" {
		name, v := first(EnvTracesProtocol, EnvProtocol)
		switch v {
		case "":
			out.Protocol = ProtocolGRPC
		case ProtocolGRPC, ProtocolHTTP:
			out.Protocol = v
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not supported; use %q or %q", name, v, ProtocolGRPC, ProtocolHTTP))
			out.Protocol = ProtocolGRPC
		}
	}

	if out.Endpoint == "" {
		if v := env(EnvTracesEndpoint); v != "" {
			if _, err := parseEndpoint(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvTracesEndpoint, err))
			}
			out.Endpoint = v
		} else if v := env(EnvEndpoint); v != "" {
			ep, err := parseEndpoint(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvEndpoint, err))
			}
			// The generic variable is a base URL: the signal's path is
			// appended for HTTP (the specification's rule), while gRPC
			// ignores paths.
			if out.Protocol == ProtocolHTTP && ep.scheme != "" {
				v = ep.scheme + "://" + ep.hostPort + strings.TrimSuffix(ep.path, "/") + "/v1/traces"
			}
			out.Endpoint = v
		} else if out.Protocol == ProtocolHTTP {
			out.Endpoint = "http://localhost:4318/v1/traces"
		} else {
			out.Endpoint = "localhost:4317"
		}
	}

	if out.Insecure == nil {
		if name, v := first(EnvTracesInsecure, EnvInsecure); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not true or false", name, v))
			}
			out.Insecure = &b
		} else if ep, err := parseEndpoint(out.Endpoint); err == nil {
			host := ep.hostPort[:strings.LastIndexByte(ep.hostPort, ':')]
			b := ep.scheme == "http" || (ep.scheme == "" && isLoopbackHost(host))
			out.Insecure = &b
		}
	}

	if out.SamplingRatio == nil {
		r, err := samplerRatioFromEnv(env(EnvSampler), env(EnvSamplerArg))
		if err != nil {
			errs = append(errs, err)
		}
		out.SamplingRatio = &r
	}

	if len(out.Propagators) == 0 {
		if v := env(EnvPropagators); v != "" {
			for i, name := range strings.Split(v, ",") {
				name = strings.TrimSpace(name)
				if _, ok := propagatorsByName[name]; !ok {
					errs = append(errs, fmt.Errorf("%s: entry %d %q is not supported; use one of %s", EnvPropagators, i+1, name, propagatorNames()))
					continue
				}
				out.Propagators = append(out.Propagators, name)
			}
		} else {
			out.Propagators = DefaultPropagators()
		}
	}

	b := &out.Batch
	envInt := func(dst *int, name string, def int) {
		if *dst != 0 {
			return
		}
		*dst = def
		if v := env(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive integer", name, v))
				return
			}
			*dst = n
		}
	}
	envMillis := func(dst *Duration, name string, def time.Duration) {
		if *dst != 0 {
			return
		}
		*dst = Duration(def)
		if v := env(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("%s: %q is not a positive number of milliseconds", name, v))
				return
			}
			*dst = Duration(time.Duration(n) * time.Millisecond)
		}
	}
	envInt(&b.MaxQueueSize, EnvBSPMaxQueueSize, DefaultMaxQueueSize)
	envInt(&b.MaxExportBatchSize, EnvBSPMaxExportBatch, DefaultMaxExportBatchSize)
	// The SDK clamps the same way: a batch can never be bigger than the queue.
	b.MaxExportBatchSize = min(b.MaxExportBatchSize, b.MaxQueueSize)
	envMillis(&b.ScheduleDelay, EnvBSPScheduleDelay, DefaultScheduleDelay)
	envMillis(&b.ExportTimeout, EnvBSPExportTimeout, DefaultExportTimeout)

	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return out, nil
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
