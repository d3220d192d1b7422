package e2etest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// JSONEqual reports whether a and b are the same JSON value, whatever their
// key order and white space; it fails the test if either is not JSON.
func JSONEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}
