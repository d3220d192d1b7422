package accesslog

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

func mustCompile(t testing.TB, format string) *TextFormat {
	t.Helper()
	tf, err := CompileTextFormat(format)
	if err != nil {
		t.Fatalf("CompileTextFormat(%q): %v", format, err)
	}
	return tf
}

func TestDefaultTextGolden(t *testing.T) {
	withOriginalPath := fullInfo()
	withOriginalPath.RequestHeaders.Set("X-Envoy-Original-Path", "/before-rewrite")
	withHeaderServiceTime := &streaminfo.Info{ResponseHeaders: http.Header{"X-Envoy-Upstream-Service-Time": {"17"}}}

	tests := []struct {
		name string
		info *streaminfo.Info
		want string
	}{
		{
			name: "full",
			info: fullInfo(),
			want: `[2024-03-05T07:08:09.123Z] "GET /api/v1/items?id=7 HTTP/1.1" 503 UH,URX 42 91 1234 1100 ` +
				`"203.0.113.7, 10.0.0.1" "curl/8.5.0" "3b241101-e2bb-4255-8caf-4136c566a962" ` +
				`"example.com:8080" "10.1.2.3:8080"` + "\n",
		},
		{
			name: "empty",
			info: &streaminfo.Info{},
			want: `[-] "- - -" 0 - 0 0 0 - "-" "-" "-" "-" "-"` + "\n",
		},
		{
			name: "x-envoy-original-path wins over :path",
			info: withOriginalPath,
			want: `[2024-03-05T07:08:09.123Z] "GET /before-rewrite HTTP/1.1" 503 UH,URX 42 91 1234 1100 ` +
				`"203.0.113.7, 10.0.0.1" "curl/8.5.0" "3b241101-e2bb-4255-8caf-4136c566a962" ` +
				`"example.com:8080" "10.1.2.3:8080"` + "\n",
		},
		{
			name: "service time from the response header when Info has none",
			info: withHeaderServiceTime,
			want: `[-] "- - -" 0 - 0 0 0 17 "-" "-" "-" "-" "-"` + "\n",
		},
	}
	tf := mustCompile(t, DefaultTextFormat)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tf.AppendLine(nil, tt.info)); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestTextOperators(t *testing.T) {
	full, empty := fullInfo(), &streaminfo.Info{}
	tests := []struct {
		format    string
		full      string
		empty     string
		modifyFor func(*streaminfo.Info) // optional change to the full Info
	}{
		{format: "%START_TIME%", full: "2024-03-05T07:08:09.123Z", empty: "-"},
		{format: "%START_TIME()%", full: "2024-03-05T07:08:09.123Z", empty: "-"},
		{format: "%START_TIME(%s)%", full: "1709622489", empty: "-"},
		{format: "%START_TIME(%s.%3f)%", full: "1709622489.123", empty: "-"},
		{format: "%START_TIME(%s.%9f|%f|%1f)%", full: "1709622489.123456789|123456789|1", empty: "-"},
		{format: "%START_TIME(%Y/%m/%dT%H:%M:%S%z %Z)%", full: "2024/03/05T07:08:09+0000 UTC", empty: "-"},
		{format: "%START_TIME(%F %T.%E3S 100%%)%", full: "2024-03-05 07:08:09.09.123 100%", empty: "-"},
		{format: "%PROTOCOL%", full: "HTTP/1.1", empty: "-"},
		{format: "%RESPONSE_CODE%", full: "503", empty: "0"},
		{format: "%RESPONSE_FLAGS%", full: "UH,URX", empty: "-"},
		{format: "%RESPONSE_CODE_DETAILS%", full: "no_healthy_upstream", empty: "-"},
		{format: "%BYTES_RECEIVED%/%BYTES_SENT%", full: "42/91", empty: "0/0"},
		{format: "%DURATION%", full: "1234", empty: "0"},
		{format: "%UPSTREAM_HOST%", full: "10.1.2.3:8080", empty: "-"},
		{format: "%UPSTREAM_CLUSTER%", full: "backend", empty: "-"},
		{format: "%ROUTE_NAME%", full: "api", empty: "-"},
		{format: "%TRACE_ID%", full: "4bf92f3577b34da6a3ce929d0e0e4736", empty: "-"},
		{format: "%DOWNSTREAM_REMOTE_ADDRESS%", full: "10.0.0.1:54321", empty: "-"},
		{format: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", full: "10.0.0.1", empty: "-"},
		{format: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", full: "2001:db8::1", empty: "-",
			modifyFor: func(i *streaminfo.Info) { i.DownstreamRemoteAddress = "[2001:db8::1]:443" }},
		{format: "%REQ(:METHOD)% %REQ(:path)% %REQ(:Authority)% %REQ(HOST)%", full: "GET /api/v1/items?id=7 example.com:8080 example.com:8080", empty: "- - - -"},
		{format: "%REQ(user-agent)%", full: "curl/8.5.0", empty: "-"},
		{format: "%REQ(USER-AGENT)%", full: "from-header", empty: "-",
			modifyFor: func(i *streaminfo.Info) { i.UserAgent = ""; i.RequestHeaders.Set("User-Agent", "from-header") }},
		{format: "%REQ(X-REQUEST-ID)%", full: "3b241101-e2bb-4255-8caf-4136c566a962", empty: "-"},
		{format: "%REQ(x-forwarded-for)%", full: "203.0.113.7, 10.0.0.1", empty: "-"},
		{format: "%REQ(accept)%", full: "application/json", empty: "-"}, // first value
		{format: "%REQ(X-EMPTY)%|", full: "|", empty: "-|"},             // present but empty
		{format: "%REQ(X-MISSING?ACCEPT)%", full: "application/json", empty: "-"},
		{format: "%REQ(X-MISSING?X-ALSO-MISSING)%", full: "-", empty: "-"},
		{format: "%REQ(ACCEPT):4%", full: "appl", empty: "-"},
		{format: "%REQ(:METHOD):10%", full: "GET", empty: "-"},
		{format: "%RESP(content-type)%", full: "application/json", empty: "-"},
		{format: "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%", full: "1100", empty: "-"},
		{format: "%RESP(X-MISSING?X-ENVOY-UPSTREAM-SERVICE-TIME)%", full: "1100", empty: "-"},
		{format: "%RESP(:METHOD)%", full: "-", empty: "-"}, // pseudo-headers are request-only
		{format: "100%% of %REQ(:METHOD)%", full: "100% of GET", empty: "100% of -"},
		{format: "no operators at all", full: "no operators at all", empty: "no operators at all"},
		{format: "", full: "", empty: ""},
		{format: "%REQ(X-CTL)%", full: `a\x0ab\x1b[31m\x7f`, empty: "-",
			modifyFor: func(i *streaminfo.Info) { i.RequestHeaders["X-Ctl"] = []string{"a\nb\x1b[31m\x7f"} }},
		{format: "%ROUTE_NAME%", full: `r\x0d\x0a[fake] line`, empty: "-",
			modifyFor: func(i *streaminfo.Info) { i.RouteName = "r\r\n[fake] line" }},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			tf := mustCompile(t, tt.format)
			info := full
			if tt.modifyFor != nil {
				info = fullInfo()
				tt.modifyFor(info)
			}
			if got := string(tf.AppendLine(nil, info)); got != tt.full+"\n" {
				t.Errorf("full Info: got %q, want %q", got, tt.full+"\n")
			}
			if got := string(tf.AppendLine(nil, empty)); got != tt.empty+"\n" {
				t.Errorf("empty Info: got %q, want %q", got, tt.empty+"\n")
			}
		})
	}
}

func TestTextFormatNewline(t *testing.T) {
	tf := mustCompile(t, "%RESPONSE_CODE%\n")
	if got := string(tf.AppendLine(nil, fullInfo())); got != "503\n" {
		t.Errorf("a format that ends with a newline got another one: %q", got)
	}
	if tf.String() != "%RESPONSE_CODE%\n" {
		t.Errorf("String() = %q", tf.String())
	}
}

func TestStartTimeFarYears(t *testing.T) {
	tf := mustCompile(t, "%START_TIME%")
	info := &streaminfo.Info{StartTime: time.Date(12345, 1, 2, 3, 4, 5, 6e6, time.UTC)}
	if got := string(tf.AppendLine(nil, info)); got != "12345-01-02T03:04:05.006Z\n" {
		t.Errorf("got %q", got)
	}
	info.StartTime = time.Date(7, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := string(tf.AppendLine(nil, info)); got != "0007-01-02T03:04:05.000Z\n" {
		t.Errorf("got %q", got)
	}
}

func TestCompileTextFormatErrors(t *testing.T) {
	tests := []struct {
		format   string
		pos      int
		operator string
		reason   string // a substring of the message
	}{
		{"[%START_TIME%] %FOO%", 15, "%FOO%", "unknown command operator"},
		{"%REQUEST_ID%", 0, "%REQUEST_ID%", "use %REQ(X-REQUEST-ID)%"},
		{"abc %DURATION", 4, "%DURATION", "missing closing '%'"},
		{"100% sure", 3, "% ", "write %% for a literal percent sign"},
		{"tail %", 5, "%", "expected a command operator name"},
		{"%duration%", 0, "%d", "expected a command operator name"},
		{"%REQ%", 0, "%REQ%", "needs a header name"},
		{"%REQ()%", 0, "%REQ()%", "needs a header name"},
		{"%RESP(a?b?c)%", 0, "%RESP(a?b?c)%", "more than one alternative header"},
		{"%REQ(?b)%", 0, "%REQ(?b)%", "empty header name"},
		{"%REQ(a?)%", 0, "%REQ(a?)%", "empty header name"},
		{"%REQ(a%", 0, "%REQ(a%", "missing ')'"},
		{"%REQ(a)x%", 0, "%REQ(a)x", "expected closing '%'"},
		{"%REQ(X REQUEST ID)%", 0, "%REQ(X REQUEST ID)%", `invalid header name "X REQUEST ID"`},
		{"%RESP(ok?b\xffd)%", 0, "%RESP(ok?b\xffd)%", `invalid header name "b\xffd"`},
		{"%REQ(:)%", 0, "%REQ(:)%", `invalid header name ":"`},
		{"%REQ(a):%", 0, "%REQ(a):%", "positive length limit"},
		{"%REQ(a):0%", 0, "%REQ(a):0%", "positive length limit"},
		{"%REQ(a):99999999999999999999999%", 0, "%REQ(a):99999999999999999999999%", "positive length limit"},
		{"%DURATION:5%", 0, "%DURATION:5%", "only supported on REQ and RESP"},
		{"%DURATION(ms)%", 0, "%DURATION(ms)%", "takes no argument"},
		{"ok %START_TIME(%Q)%", 3, "%START_TIME(%Q)%", `directive "%Q" at position 15: unsupported; supported are`},
		{"%START_TIME(%)%", 0, "%START_TIME(%)%", "lone '%'"},
		{"%START_TIME(%E0S)%", 0, "%START_TIME(%E0S)%", "%E1S"},
		{"%START_TIME(%3x)%", 0, "%START_TIME(%3x)%", "followed by f"},
		{"%DYNAMIC_METADATA(x:y)%", 0, "%DYNAMIC_METADATA(x:y)%", "unknown command operator"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			tf, err := CompileTextFormat(tt.format)
			if err == nil {
				t.Fatalf("compiled to %+v, want an error", tf)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FormatError", err, err)
			}
			if fe.Pos != tt.pos || fe.Operator != tt.operator || fe.Format != tt.format {
				t.Errorf("FormatError{Pos: %d, Operator: %q, Format: %q}, want Pos %d, Operator %q",
					fe.Pos, fe.Operator, fe.Format, tt.pos, tt.operator)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.reason) {
				t.Errorf("message %q does not mention %q", msg, tt.reason)
			}
			if tt.operator != "" && !strings.Contains(msg, strconv.Quote(tt.operator)) {
				t.Errorf("message %q does not quote the operator %q", msg, tt.operator)
			}
		})
	}
}

// FuzzCompileTextFormat checks that no format string makes the compiler or
// the formatter panic, that errors point inside the format, and that
// literal text comes out unchanged.
func FuzzCompileTextFormat(f *testing.F) {
	f.Add(DefaultTextFormat)
	f.Add("%REQ(X-A?X-B):12% %RESP(Y)% 100%% %START_TIME(%s.%3f %E6S %F %T)%")
	f.Add("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %TRACE_ID% %ROUTE_NAME%")
	f.Add("%")
	f.Add("%(%)%")
	f.Add("%REQ(")
	f.Add("%START_TIME(%9")
	f.Fuzz(func(t *testing.T, format string) {
		tf, err := CompileTextFormat(format)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T is not a *FormatError: %v", err, err)
			}
			if fe.Pos < 0 || fe.Pos >= len(format) || format[fe.Pos] != '%' {
				t.Fatalf("error position %d does not point at a '%%' in %q: %v", fe.Pos, format, err)
			}
			if !strings.HasPrefix(format[fe.Pos:], fe.Operator) {
				t.Fatalf("operator %q is not the text at position %d of %q", fe.Operator, fe.Pos, format)
			}
			return
		}
		if tf.String() != format {
			t.Fatalf("String() = %q, want %q", tf.String(), format)
		}
		for _, info := range []*streaminfo.Info{fullInfo(), {}} {
			line := tf.AppendLine(nil, info)
			if len(line) == 0 || line[len(line)-1] != '\n' {
				t.Fatalf("line %q does not end with a newline", line)
			}
			if !strings.Contains(format, "%") {
				want := format
				if !strings.HasSuffix(want, "\n") {
					want += "\n"
				}
				if string(line) != want {
					t.Fatalf("literal format %q rendered as %q", format, line)
				}
			}
		}
	})
}
