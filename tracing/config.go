package tracing

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config configures tracing. It is meant to be embedded in a larger YAML
// configuration (the proxy's `tracing:` section); every field is optional.
//
// Precedence, as OpenTelemetry users expect from the SDKs: a value set here
// wins over the matching OTEL_* environment variable, which wins over the
// built-in default. Resolve applies that rule and fills in the defaults.
type Config struct {
	// ServiceName becomes the service.name resource attribute. Environment:
	// OTEL_SERVICE_NAME, then service.name in OTEL_RESOURCE_ATTRIBUTES.
	// Default: "unknown_service" as the OpenTelemetry specification says.
	ServiceName string `yaml:"service_name"`
	// InstanceID becomes service.instance.id. Default: a new random UUID per
	// Setup, so two replicas of one service never share an instance ID.
	InstanceID string `yaml:"instance_id"`
	// Endpoint is the OTLP receiver: "host:port" or an http(s):// URL. A
	// URL's path is used as is for http/protobuf; without one the path is
	// /v1/traces. Environment: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as
	// is), then OTEL_EXPORTER_OTLP_ENDPOINT (a base URL: /v1/traces is
	// appended for http/protobuf). Default: localhost:4317 for grpc,
	// http://localhost:4318/v1/traces for http/protobuf.
	Endpoint string `yaml:"endpoint"`
	// Protocol is "grpc" (default) or "http/protobuf". Environment:
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL.
	Protocol string `yaml:"protocol"`
	// Insecure sends OTLP without TLS. Environment:
	// OTEL_EXPORTER_OTLP_TRACES_INSECURE, then OTEL_EXPORTER_OTLP_INSECURE.
	// Default: true for an http:// URL or a loopback host (localhost,
	// 127.0.0.0/8, ::1), false otherwise (so a remote collector gets TLS
	// unless asked not to).
	Insecure *bool `yaml:"insecure"`
	// SamplingRatio is the share of root requests traced, in [0, 1]; a
	// parent's decision always wins over it (see RequestIDSampler).
	// Environment: OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the
	// always_on, always_off and traceidratio samplers and their parentbased_
	// forms; all are applied parent-based). Default: 1.0, as Envoy's
	// random_sampling defaults to 100%.
	SamplingRatio *float64 `yaml:"sampling_ratio"`
	// Propagators lists the header formats extracted and injected, from
	// tracecontext, baggage, b3 (single header), b3multi, jaeger
	// (uber-trace-id) and none. Environment: OTEL_PROPAGATORS (comma
	// separated). Default: [tracecontext, baggage].
	Propagators []string `yaml:"propagators"`
	// ResourceAttributes are added to the resource. Environment:
	// OTEL_RESOURCE_ATTRIBUTES (key=value,... percent-encoded); a key set
	// here wins over the same key from the environment.
	ResourceAttributes map[string]string `yaml:"resource_attributes"`
	// Zone becomes cloud.availability_zone, Envoy's notion of the local zone.
	Zone string `yaml:"zone"`
	// Batch tunes the batch span processor.
	Batch BatchConfig `yaml:"batch"`
}

// BatchConfig tunes the batch span processor. Zero values take defaults.
type BatchConfig struct {
	// MaxQueueSize bounds the spans waiting for export; spans that find it
	// full are dropped and counted by Provider.Dropped. Environment:
	// OTEL_BSP_MAX_QUEUE_SIZE. Default 2048.
	MaxQueueSize int `yaml:"max_queue_size"`
	// MaxExportBatchSize bounds the spans per export request. Environment:
	// OTEL_BSP_MAX_EXPORT_BATCH_SIZE. Default 512; never above MaxQueueSize.
	MaxExportBatchSize int `yaml:"max_export_batch_size"`
	// ScheduleDelay is the longest a finished span waits before export.
	// Environment: OTEL_BSP_SCHEDULE_DELAY (milliseconds). Default 1s,
	// shorter than the SDK's 5s so that a trace shows up in Jaeger while
	// the person who sent the request is still looking.
	ScheduleDelay Duration `yaml:"schedule_delay"`
	// ExportTimeout bounds one export, retries included. Environment:
	// OTEL_BSP_EXPORT_TIMEOUT (milliseconds). Default 5s, not the SDK's 30s:
	// while a collector is down the exporter goroutine is stuck for at most
	// this long per batch, and the queue in front of it drops (and counts)
	// rather than grows.
	ExportTimeout Duration `yaml:"export_timeout"`
}

// Defaults of Config, after the environment.
const (
	DefaultServiceName        = "unknown_service"
	DefaultSamplingRatio      = 1.0
	DefaultMaxQueueSize       = 2048
	DefaultMaxExportBatchSize = 512
	DefaultScheduleDelay      = time.Second
	DefaultExportTimeout      = 5 * time.Second
	// ProtocolGRPC and ProtocolHTTP are the values of Config.Protocol.
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// DefaultPropagators is the propagator list used when neither the
// configuration nor OTEL_PROPAGATORS names one: W3C tracecontext and baggage,
// as in the OpenTelemetry specification.
func DefaultPropagators() []string { return []string{"tracecontext", "baggage"} }

// Duration is a time.Duration written in YAML (or any text format) as a Go
// duration string such as "250ms", "1.5s" or "1m"; Envoy's "0.25s" form is
// therefore accepted as is. It is the one duration type of hopwatch's
// configuration: the proxy's config.Duration is this type.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration as time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText renders the duration as a string such as "15s", so that a
// configuration dump (JSON or YAML) shows what a user would write and
// parses back.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string. A bare number is rejected,
// because "5" could mean seconds or milliseconds.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf(`expected a duration such as "250ms" or "1.5s", got %q: %w`, b, err)
	}
	*d = Duration(v)
	return nil
}

// FieldError is one invalid setting found by Config.Validate: the YAML
// field it is about, as a path under the tracing section
// ("batch.max_queue_size", "propagators[1]"), the offending value, and
// what is wrong with it. A configuration file that embeds Config prefixes
// Field with the section's own path to find the line.
type FieldError struct {
	// Field is the path of the setting, such as "batch.schedule_delay".
	Field string
	// Value is the offending value; nil when no single value is at fault.
	Value any
	// Problem says what is wrong, naming the value as written, such as
	// `"udp" is not supported; use "grpc" or "http/protobuf"`.
	Problem string
}

// Error is "field: problem".
func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// fieldError is a *FieldError with a formatted problem.
func fieldError(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks the values that are set, without consulting the
// environment or filling defaults. Each error is a *FieldError naming the
// YAML field (several are joined). Resolve calls it, so callers that
// Resolve need not.
func (c Config) Validate() error {
	var errs []error
	if c.Protocol != "" && c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP {
		errs = append(errs, fieldError("protocol", c.Protocol, "%q is not supported; use %q or %q", c.Protocol, ProtocolGRPC, ProtocolHTTP))
	}
	if c.Endpoint != "" {
		if _, err := parseEndpoint(c.Endpoint); err != nil {
			errs = append(errs, &FieldError{Field: "endpoint", Value: c.Endpoint, Problem: err.Error()})
		}
	}
	if r := c.SamplingRatio; r != nil && !(*r >= 0 && *r <= 1) { // also rejects NaN
		errs = append(errs, fieldError("sampling_ratio", *r, "%v is outside [0, 1]", *r))
	}
	for i, name := range c.Propagators {
		if _, ok := propagatorsByName[name]; !ok {
			errs = append(errs, fieldError(fmt.Sprintf("propagators[%d]", i), name, "%q is not supported; use one of %s", name, propagatorNames()))
		}
	}
	for k := range c.ResourceAttributes {
		if k == "" {
			errs = append(errs, fieldError("resource_attributes", k, "empty key"))
		}
	}
	b := c.Batch
	if b.MaxQueueSize < 0 {
		errs = append(errs, fieldError("batch.max_queue_size", b.MaxQueueSize, "%d is negative", b.MaxQueueSize))
	}
	if b.MaxExportBatchSize < 0 {
		errs = append(errs, fieldError("batch.max_export_batch_size", b.MaxExportBatchSize, "%d is negative", b.MaxExportBatchSize))
	}
	if b.MaxQueueSize > 0 && b.MaxExportBatchSize > b.MaxQueueSize {
		errs = append(errs, fieldError("batch.max_export_batch_size", b.MaxExportBatchSize, "%d is larger than batch.max_queue_size %d", b.MaxExportBatchSize, b.MaxQueueSize))
	}
	if b.ScheduleDelay < 0 {
		errs = append(errs, fieldError("batch.schedule_delay", b.ScheduleDelay, "%v is negative", b.ScheduleDelay))
	}
	if b.ExportTimeout < 0 {
		errs = append(errs, fieldError("batch.export_timeout", b.ExportTimeout, "%v is negative", b.ExportTimeout))
	}
	return errors.Join(errs...)
}

// endpoint is a parsed Config.Endpoint.
type endpoint struct {
	hostPort string // always host:port
	scheme   string // "", "http" or "https"
	path     string // "" when the endpoint names none
}

// parseEndpoint accepts "host:port" or "http(s)://host:port[/path]".
func parseEndpoint(s string) (endpoint, error) {
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return endpoint{}, fmt.Errorf("%q is not a valid URL: %w", s, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return endpoint{}, fmt.Errorf("%q: scheme %q is not supported; use http:// or https://", s, u.Scheme)
		}
		if u.Hostname() == "" {
			return endpoint{}, fmt.Errorf("%q has no host", s)
		}
		if u.Port() == "" {
			// The OTLP port differs by protocol (4317 gRPC, 4318 HTTP);
			// guessing would turn a typo into a silent hang.
			return endpoint{}, fmt.Errorf("%q has no port (OTLP uses 4317 for grpc, 4318 for http/protobuf)", s)
		}
		hp := u.Host
		p := u.Path
		if p == "/" {
			p = ""
		}
		return endpoint{hostPort: hp, scheme: u.Scheme, path: p}, nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("%q: want host:port or an http(s):// URL: %w", s, err)
	}
	if host == "" || port == "" {
		return endpoint{}, fmt.Errorf("%q: want host:port with both parts", s)
	}
	return endpoint{hostPort: s}, nil
}

// isLoopbackHost reports whether host names this machine.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
