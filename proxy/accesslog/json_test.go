package accesslog

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

func TestJSONGolden(t *testing.T) {
	tests := []struct {
		name string
		info *streaminfo.Info
		want string
	}{
		{
			name: "full",
			info: fullInfo(),
			want: `{"start_time":"2024-03-05T07:08:09.123Z","method":"GET","path":"/api/v1/items?id=7",` +
				`"protocol":"HTTP/1.1","response_code":503,"response_flags":"UH,URX",` +
				`"response_code_details":"no_healthy_upstream","bytes_received":42,"bytes_sent":91,` +
				`"duration":1234,"upstream_service_time":1100,"x_forwarded_for":"203.0.113.7, 10.0.0.1",` +
				`"user_agent":"curl/8.5.0","request_id":"3b241101-e2bb-4255-8caf-4136c566a962",` +
				`"authority":"example.com:8080","upstream_cluster":"backend","upstream_host":"10.1.2.3:8080",` +
				`"route_name":"api","attempts":3,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",` +
				`"span_id":"00f067aa0ba902b7"}` + "\n",
		},
		{
			name: "empty",
			info: &streaminfo.Info{},
			want: `{"start_time":null,"method":null,"path":null,"protocol":null,"response_code":0,` +
				`"response_flags":"-","response_code_details":null,"bytes_received":0,"bytes_sent":0,` +
				`"duration":0,"upstream_service_time":null,"x_forwarded_for":null,"user_agent":null,` +
				`"request_id":null,"authority":null,"upstream_cluster":null,"upstream_host":null,` +
				`"route_name":null,"attempts":0,"trace_id":null,"span_id":null}` + "\n",
		},
		{
			name: "upstream answered in under a millisecond",
			info: &streaminfo.Info{HasUpstreamServiceTime: true, UpstreamServiceTime: 400 * time.Microsecond},
			want: `{"start_time":null,"method":null,"path":null,"protocol":null,"response_code":0,` +
				`"response_flags":"-","response_code_details":null,"bytes_received":0,"bytes_sent":0,` +
				`"duration":0,"upstream_service_time":0,"x_forwarded_for":null,"user_agent":null,` +
				`"request_id":null,"authority":null,"upstream_cluster":null,"upstream_host":null,` +
				`"route_name":null,"attempts":0,"trace_id":null,"span_id":null}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(JSON{}.AppendLine(nil, tt.info))
			if got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(got), &m); err != nil {
				t.Fatalf("line is not valid JSON: %v", err)
			}
		})
	}
}

// TestJSONKeyOrder decodes the line token by token: key order is part of
// the format's contract.
func TestJSONKeyOrder(t *testing.T) {
	want := []string{"start_time", "method", "path", "protocol", "response_code", "response_flags",
		"response_code_details", "bytes_received", "bytes_sent", "duration", "upstream_service_time",
		"x_forwarded_for", "user_agent", "request_id", "authority", "upstream_cluster", "upstream_host",
		"route_name", "attempts", "trace_id", "span_id"}
	dec := json.NewDecoder(bytes.NewReader(JSON{}.AppendLine(nil, fullInfo())))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("first token = %v, %v", tok, err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("keys\n%v\nwant\n%v", keys, want)
	}
}

func TestJSONEscaping(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"line\nbreak\r\ttab\b\f", `"line\nbreak\r\ttab\b\f"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\x7f", "\"\x7f\""}, // DEL is valid JSON
		{"héllo ☃ 𝄞", `"héllo ☃ 𝄞"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"\xe2\x82", `"\ufffd\ufffd"`},           // truncated sequence: one U+FFFD per byte, like encoding/json
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // a UTF-16 surrogate is not valid UTF-8
		{"js\u2028\u2029", `"js\u2028\u2029"`},
		{"</script>", `"</script>"`},
	}
	for _, tt := range tests {
		got := string(appendJSONString(nil, tt.in))
		if got != tt.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("appendJSONString(%q) = %s is not valid JSON", tt.in, got)
		}
	}
}

// TestFlagsMatchStreaminfo checks the allocation-free flag renderer against
// streaminfo's own String for every single flag and many combinations.
func TestFlagsMatchStreaminfo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []streaminfo.Flags{0, 1<<19 - 1, 1 << 31}
	for i := range 32 {
		cases = append(cases, streaminfo.Flags(1)<<i)
	}
	for range 1000 {
		cases = append(cases, streaminfo.Flags(r.Uint32()))
	}
	for _, fs := range cases {
		if got, want := string(appendFlags(nil, fs)), fs.String(); got != want {
			t.Errorf("appendFlags(%#x) = %q, Flags.String() = %q", uint32(fs), got, want)
		}
	}
}

func TestFormatAllocs(t *testing.T) {
	tf, err := CompileTextFormat(DefaultTextFormat + `%REQ(ACCEPT)% %START_TIME(%s.%3f)%`)
	if err != nil {
		t.Fatal(err)
	}
	info := fullInfo()
	buf := make([]byte, 0, 4096)
	for name, f := range map[string]Formatter{"json": JSON{}, "text": tf} {
		if n := testing.AllocsPerRun(100, func() { buf = f.AppendLine(buf[:0], info) }); n != 0 {
			t.Errorf("%s: %v allocations per line, want 0", name, n)
		}
	}
}

// jsonFieldsForFuzz lists the string fields the fuzz target fills and the
// JSON key each appears under.
var jsonFieldsForFuzz = []struct {
	key string
	set func(*streaminfo.Info, string)
}{
	{"method", func(i *streaminfo.Info, s string) { i.Method = s }},
	{"path", func(i *streaminfo.Info, s string) { i.Path = s }},
	{"user_agent", func(i *streaminfo.Info, s string) { i.UserAgent = s }},
	{"x_forwarded_for", func(i *streaminfo.Info, s string) { i.XForwardedFor = s }},
	{"authority", func(i *streaminfo.Info, s string) { i.Authority = s }},
	{"request_id", func(i *streaminfo.Info, s string) { i.RequestID = s }},
}

// FuzzJSONEscape checks that whatever strings a request carries, the line
// is one valid JSON object on one line, and each value decodes to what
// encoding/json itself would produce for that string.
func FuzzJSONEscape(f *testing.F) {
	f.Add("GET", "/a?b=c", "curl", "\x00\n\"\\", "\xff\xfe", "\u2028")
	f.Add("", "", "", "", "", "")
	f.Add("\xed\xa0\x80", "\xf4\x90\x80\x80", "\xc0\xaf", "\t\r\b\f\x7f", "𝄞", "\"}")
	f.Fuzz(func(t *testing.T, a, b, c, d, e, g string) {
		in := []string{a, b, c, d, e, g}
		info := fullInfo()
		for i, fld := range jsonFieldsForFuzz {
			fld.set(info, in[i])
		}
		line := JSON{}.AppendLine(nil, info)
		if bytes.IndexByte(line, '\n') != len(line)-1 {
			t.Fatalf("line has a newline before its end: %q", line)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("invalid JSON for %q: %v\n%s", in, err, line)
		}
		for i, fld := range jsonFieldsForFuzz {
			got := m[fld.key]
			if in[i] == "" {
				if got != nil {
					t.Fatalf("%s: empty string encoded as %v, want null", fld.key, got)
				}
				continue
			}
			ref, _ := json.Marshal(in[i])
			var want string
			if err := json.Unmarshal(ref, &want); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%s: decoded %q, encoding/json gives %q", fld.key, got, want)
			}
		}
	})
}
