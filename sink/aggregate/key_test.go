package aggregate

import (
	"bytes"
	"fmt"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []Label
	}{
		{"a", nil},
		{"", nil},
		{"envoy_cluster_upstream_rq", []Label{{"envoy_cluster_name", "svc.ns"}, {"envoy_response_code", "200"}}},
		// Separator-like and invalid UTF-8 bytes in values stay unambiguous.
		{"m", []Label{{"l", "\xff\xfe\x00"}, {"m", ""}}},
		{"m", []Label{{"l", string(bytes.Repeat([]byte("v"), 300))}}},
	} {
		key := AppendKey(nil, tc.name, tc.labels)
		if !validKey(key) {
			t.Errorf("%q %v: key %q is not valid", tc.name, tc.labels, key)
			continue
		}
		name, _, _ := decodeName(string(key))
		got := appendLabels(nil, string(key))
		if name != tc.name || fmt.Sprint(got) != fmt.Sprint(tc.labels) && !(len(got) == 0 && len(tc.labels) == 0) {
			t.Errorf("%q %v: decoded %q %v", tc.name, tc.labels, name, got)
		}
		b := AppendKeyName(nil, tc.name)
		for _, l := range tc.labels {
			b = AppendKeyLabel(b, l.Name, l.Value)
		}
		if !bytes.Equal(b, key) {
			t.Errorf("%q %v: AppendKeyName/Label %q != AppendKey %q", tc.name, tc.labels, b, key)
		}
	}
	// Different splits of the same bytes give different keys.
	a := AppendKey(nil, "ab", []Label{{"c", "d"}})
	b := AppendKey(nil, "a", []Label{{"bc", "d"}})
	if bytes.Equal(a, b) {
		t.Error("keys of different series collide")
	}
}

func TestInvalidKeys(t *testing.T) {
	s := New(Options{})
	for _, k := range []string{"\x05ab", "\x01a\x01l", "\x01a\x01l\x05v", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if se, out := s.GetOrCreate([]byte(k), spec(KindCounter)); se != nil || out != Invalid {
			t.Errorf("key %q: outcome %v, want Invalid", k, out)
		}
	}
}

// FuzzKey checks that decoding any bytes never panics, and that a valid
// key re-encodes to itself.
func FuzzKey(f *testing.F) {
	f.Add(AppendKey(nil, "m", []Label{{"a", "b"}}))
	f.Add([]byte("\x80\x80\x80"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, key []byte) {
		if !validKey(key) {
			return
		}
		name, _, _ := decodeName(string(key))
		again := AppendKey(nil, name, appendLabels(nil, string(key)))
		if !bytes.Equal(again, key) && canonicalVarints(key) {
			t.Fatalf("key %q re-encodes as %q", key, again)
		}
	})
}

// canonicalVarints reports whether every length in key is minimally
// encoded (a non-minimal varint decodes fine but re-encodes shorter).
func canonicalVarints(key []byte) bool {
	for len(key) > 0 {
		i := 0
		for i < len(key) && key[i] >= 0x80 {
			i++
		}
		if i > 0 && i < len(key) && key[i] == 0 {
			return false
		}
		_, rest, ok := readField(key)
		if !ok {
			return false
		}
		key = rest
	}
	return true
}
