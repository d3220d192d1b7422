package tracing

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func ptr[T any](v T) *T { return &v }

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"empty is valid", Config{}, ""},
		{"full", Config{Protocol: ProtocolHTTP, Endpoint: "http://127.0.0.1:4318/v1/traces", SamplingRatio: ptr(0.5),
			Propagators: []string{"b3", "jaeger"}, Batch: BatchConfig{MaxQueueSize: 10, MaxExportBatchSize: 5}}, ""},
		{"bad protocol", Config{Protocol: "http/json"}, `protocol: "http/json" is not supported`},
		{"ratio above 1", Config{SamplingRatio: ptr(1.5)}, "sampling_ratio: 1.5 is outside [0, 1]"},
		{"ratio negative", Config{SamplingRatio: ptr(-0.1)}, "sampling_ratio"},
		{"unknown propagator", Config{Propagators: []string{"tracecontext", "xray"}}, `propagators[1]: "xray" is not supported`},
		{"endpoint without port", Config{Endpoint: "collector"}, "endpoint:"},
		{"URL without port", Config{Endpoint: "http://collector/v1/traces"}, "has no port"},
		{"URL bad scheme", Config{Endpoint: "ftp://collector:21"}, `scheme "ftp"`},
		{"batch larger than queue", Config{Batch: BatchConfig{MaxQueueSize: 10, MaxExportBatchSize: 11}}, "batch.max_export_batch_size: 11 is larger"},
		{"negative queue", Config{Batch: BatchConfig{MaxQueueSize: -1}}, "batch.max_queue_size: -1 is negative"},
		{"negative delay", Config{Batch: BatchConfig{ScheduleDelay: Duration(-time.Second)}}, "batch.schedule_delay"},
		{"empty attribute key", Config{ResourceAttributes: map[string]string{"": "x"}}, "resource_attributes: empty key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateFieldErrors: each error is a *FieldError carrying the field
// and the offending value apart from the text, so that a configuration
// embedding Config can point at the field without parsing the message.
func TestValidateFieldErrors(t *testing.T) {
	err := Config{Propagators: []string{"tracecontext", "xray"}, Batch: BatchConfig{MaxQueueSize: -1}}.Validate()
	var got []FieldError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fe, ok := errors.AsType[*FieldError](e)
		if !ok {
			t.Fatalf("error %v is a %T, want a *FieldError", e, e)
		}
		got = append(got, *fe)
	}
	want := []FieldError{
		{Field: "propagators[1]", Value: "xray", Problem: `"xray" is not supported; use one of ` + propagatorNames()},
		{Field: "batch.max_queue_size", Value: -1, Problem: "-1 is negative"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Validate errors = %+v, want %+v", got, want)
	}
}

func TestResolveDefaults(t *testing.T) {
	c, err := Resolve(Config{}, envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.ServiceName != DefaultServiceName || c.Protocol != ProtocolGRPC || c.Endpoint != "localhost:4317" ||
		!*c.Insecure || *c.SamplingRatio != 1 || !slices.Equal(c.Propagators, []string{"tracecontext", "baggage"}) {
		t.Errorf("defaults: %+v (insecure %v, ratio %v)", c, *c.Insecure, *c.SamplingRatio)
	}
	want := BatchConfig{DefaultMaxQueueSize, DefaultMaxExportBatchSize, Duration(DefaultScheduleDelay), Duration(DefaultExportTimeout)}
	if c.Batch != want {
		t.Errorf("batch defaults = %+v, want %+v", c.Batch, want)
	}
}

func TestResolveEnvironment(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"service name from env", Config{}, map[string]string{EnvServiceName: "shop"},
			func(t *testing.T, c Config) { eq(t, "service", c.ServiceName, "shop") }},
		{"config wins over env", Config{ServiceName: "cfg"}, map[string]string{EnvServiceName: "env"},
			func(t *testing.T, c Config) { eq(t, "service", c.ServiceName, "cfg") }},
		{"OTEL_SERVICE_NAME wins over resource attribute", Config{},
			map[string]string{EnvServiceName: "a", EnvResourceAttributes: "service.name=b"},
			func(t *testing.T, c Config) { eq(t, "service", c.ServiceName, "a") }},
		{"service name from resource attributes", Config{},
			map[string]string{EnvResourceAttributes: "service.name=b,service.instance.id=i-1,team=core"},
			func(t *testing.T, c Config) {
				eq(t, "service", c.ServiceName, "b")
				eq(t, "instance", c.InstanceID, "i-1")
				if !maps.Equal(c.ResourceAttributes, map[string]string{"team": "core"}) {
					t.Errorf("attributes = %v", c.ResourceAttributes)
				}
			}},
		{"configured attributes win per key", Config{ResourceAttributes: map[string]string{"team": "cfg"}},
			map[string]string{EnvResourceAttributes: "team=env,region=eu"},
			func(t *testing.T, c Config) {
				if !maps.Equal(c.ResourceAttributes, map[string]string{"team": "cfg", "region": "eu"}) {
					t.Errorf("attributes = %v", c.ResourceAttributes)
				}
			}},
		{"grpc endpoint from generic env keeps URL", Config{}, map[string]string{EnvEndpoint: "http://jaeger:4317"},
			func(t *testing.T, c Config) {
				eq(t, "endpoint", c.Endpoint, "http://jaeger:4317")
				eq(t, "insecure", *c.Insecure, true)
			}},
		{"http endpoint from generic env gets signal path", Config{},
			map[string]string{EnvEndpoint: "https://collector:4318/otlp/", EnvProtocol: "http/protobuf"},
			func(t *testing.T, c Config) {
				eq(t, "protocol", c.Protocol, ProtocolHTTP)
				eq(t, "endpoint", c.Endpoint, "https://collector:4318/otlp/v1/traces")
				eq(t, "insecure", *c.Insecure, false)
			}},
		{"traces endpoint used as is and wins", Config{},
			map[string]string{EnvEndpoint: "http://a:4318", EnvTracesEndpoint: "http://b:4318/custom", EnvProtocol: "http/protobuf"},
			func(t *testing.T, c Config) { eq(t, "endpoint", c.Endpoint, "http://b:4318/custom") }},
		{"traces protocol wins over generic", Config{},
			map[string]string{EnvProtocol: "grpc", EnvTracesProtocol: "http/protobuf"},
			func(t *testing.T, c Config) {
				eq(t, "protocol", c.Protocol, ProtocolHTTP)
				eq(t, "endpoint", c.Endpoint, "http://localhost:4318/v1/traces")
			}},
		{"remote host:port defaults to TLS", Config{Endpoint: "jaeger.observability:4317"}, nil,
			func(t *testing.T, c Config) { eq(t, "insecure", *c.Insecure, false) }},
		{"loopback IPv6 is insecure", Config{Endpoint: "[::1]:4317"}, nil,
			func(t *testing.T, c Config) { eq(t, "insecure", *c.Insecure, true) }},
		{"insecure from env", Config{Endpoint: "jaeger:4317"}, map[string]string{EnvInsecure: "true"},
			func(t *testing.T, c Config) { eq(t, "insecure", *c.Insecure, true) }},
		{"configured insecure wins", Config{Insecure: ptr(false)}, map[string]string{EnvInsecure: "true"},
			func(t *testing.T, c Config) { eq(t, "insecure", *c.Insecure, false) }},
		{"sampler always_off", Config{}, map[string]string{EnvSampler: "always_off"},
			func(t *testing.T, c Config) { eq(t, "ratio", *c.SamplingRatio, 0.0) }},
		{"sampler ratio", Config{}, map[string]string{EnvSampler: "parentbased_traceidratio", EnvSamplerArg: "0.25"},
			func(t *testing.T, c Config) { eq(t, "ratio", *c.SamplingRatio, 0.25) }},
		{"configured ratio wins, even 0", Config{SamplingRatio: ptr(0.0)}, map[string]string{EnvSampler: "always_on"},
			func(t *testing.T, c Config) { eq(t, "ratio", *c.SamplingRatio, 0.0) }},
		{"propagators from env", Config{}, map[string]string{EnvPropagators: "b3multi, jaeger"},
			func(t *testing.T, c Config) { eq(t, "propagators", strings.Join(c.Propagators, ","), "b3multi,jaeger") }},
		{"empty env counts as unset", Config{}, map[string]string{EnvPropagators: "", EnvServiceName: " "},
			func(t *testing.T, c Config) {
				eq(t, "propagators", strings.Join(c.Propagators, ","), "tracecontext,baggage")
				eq(t, "service", c.ServiceName, DefaultServiceName)
			}},
		{"batch from env in milliseconds", Config{Batch: BatchConfig{MaxQueueSize: 100}},
			map[string]string{EnvBSPMaxQueueSize: "5", EnvBSPScheduleDelay: "250", EnvBSPExportTimeout: "1000"},
			func(t *testing.T, c Config) {
				eq(t, "queue", c.Batch.MaxQueueSize, 100)
				eq(t, "batch clamped to queue", c.Batch.MaxExportBatchSize, 100)
				eq(t, "delay", c.Batch.ScheduleDelay.D(), 250*time.Millisecond)
				eq(t, "timeout", c.Batch.ExportTimeout.D(), time.Second)
			}},
		{"env queue smaller than default batch clamps batch", Config{}, map[string]string{EnvBSPMaxQueueSize: "8"},
			func(t *testing.T, c Config) { eq(t, "batch", c.Batch.MaxExportBatchSize, 8) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Resolve(tt.cfg, envMap(tt.env))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestResolveEnvironmentErrors(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantErr string
	}{
		{map[string]string{EnvProtocol: "http/json"}, `OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" is not supported`},
		{map[string]string{EnvTracesEndpoint: "not a url:"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{map[string]string{EnvEndpoint: "gopher://x:1"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{map[string]string{EnvInsecure: "yes please"}, `OTEL_EXPORTER_OTLP_INSECURE: "yes please" is not true or false`},
		{map[string]string{EnvSampler: "jaeger_remote"}, `OTEL_TRACES_SAMPLER: "jaeger_remote" is not supported`},
		{map[string]string{EnvSampler: "traceidratio", EnvSamplerArg: "2"}, `OTEL_TRACES_SAMPLER_ARG: "2" is not a ratio`},
		{map[string]string{EnvPropagators: "tracecontext,xray"}, `OTEL_PROPAGATORS: entry 2 "xray" is not supported`},
		{map[string]string{EnvResourceAttributes: "a=1,broken"}, `OTEL_RESOURCE_ATTRIBUTES: entry 2 "broken": want key=value`},
		{map[string]string{EnvBSPMaxQueueSize: "-3"}, `OTEL_BSP_MAX_QUEUE_SIZE: "-3" is not a positive integer`},
		{map[string]string{EnvBSPScheduleDelay: "1s"}, `OTEL_BSP_SCHEDULE_DELAY: "1s" is not a positive number of milliseconds`},
	}
	for _, tt := range tests {
		t.Run(tt.wantErr, func(t *testing.T) {
			_, err := Resolve(Config{}, envMap(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve() error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseResourceAttributes(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{"a=1", map[string]string{"a": "1"}, ""},
		{" a = 1 , b=two%20words ", map[string]string{"a": "1", "b": "two words"}, ""},
		{"k=v=w", map[string]string{"k": "v=w"}, ""},
		{"a=1,a=2", map[string]string{"a": "2"}, ""},
		{"a=", map[string]string{"a": ""}, ""},
		{"a=1,", nil, `entry 2 "": want key=value`},
		{"=1", nil, "empty key"},
		{"a=%zz", nil, "value"},
		{"%G=1", nil, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseResourceAttributes(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseResourceAttributes(f *testing.F) {
	for _, s := range []string{"", "a=1", "a=1,b=%20", "=", ",,", "a=%", "service.name=x,k=v=w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseResourceAttributes(s)
		if err != nil {
			return
		}
		for k := range m {
			if k == "" {
				t.Fatalf("accepted an empty key from %q", s)
			}
		}
		// Every accepted entry contributes at most one key.
		if len(m) > strings.Count(s, ",")+1 {
			t.Fatalf("%d keys from %d entries in %q", len(m), strings.Count(s, ",")+1, s)
		}
	})
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("250ms")); err != nil || d.D() != 250*time.Millisecond {
		t.Fatalf("250ms: %v %v", d, err)
	}
	if err := d.UnmarshalText([]byte("5")); err == nil || !strings.Contains(err.Error(), `got "5"`) {
		t.Fatalf("bare number accepted or unclear error: %v", err)
	}
	b, _ := Duration(90 * time.Second).MarshalText()
	if string(b) != "1m30s" {
		t.Fatalf("MarshalText = %s", b)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
service_name: front-proxy
endpoint: 127.0.0.1:4317
protocol: grpc
insecure: true
sampling_ratio: 0.01
propagators: [tracecontext, b3multi, jaeger]
resource_attributes: {team: edge}
zone: eu-1a
batch: {max_queue_size: 4096, max_export_batch_size: 256, schedule_delay: 500ms, export_timeout: 2s}
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.ServiceName != "front-proxy" || *c.SamplingRatio != 0.01 || !*c.Insecure || len(c.Propagators) != 3 ||
		c.ResourceAttributes["team"] != "edge" || c.Batch.ScheduleDelay.D() != 500*time.Millisecond || c.Batch.ExportTimeout.D() != 2*time.Second {
		t.Fatalf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	err := yaml.Unmarshal([]byte("batch: {schedule_delay: 5}"), &c)
	if err == nil || !strings.Contains(err.Error(), `got "5"`) {
		t.Fatalf("bare number duration: %v", err)
	}
}
