package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseH2load(t *testing.T) {
	ok, err := os.ReadFile(filepath.Join("testdata", "h2load-ok.txt"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseH2load(ok)
	if err != nil {
		t.Fatal(err)
	}
	want := h2loadResult{RPS: 25179, Done: 50358, Succeeded: 50358, Protocol: "h2c"}
	if r != want {
		t.Fatalf("parseH2load = %+v, want %+v", r, want)
	}

	failing := strings.Replace(string(ok), "50358 succeeded, 0 failed, 0 errored, 0 timeout", "50350 succeeded, 5 failed, 2 errored, 1 timeout", 1)
	failing = strings.Replace(failing, "0 4xx, 0 5xx", "0 4xx, 9 5xx", 1)
	r, err = parseH2load([]byte(failing))
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed != 8 || r.Non2xx != 9 || r.errors() != 17 {
		t.Fatalf("failed %d, non-2xx %d, errors %d; want 8, 9, 17", r.Failed, r.Non2xx, r.errors())
	}

	for name, in := range map[string]string{
		"empty":           "",
		"no requests":     "finished in 3.00s, 25179.00 req/s, 3.60MB/s\n",
		"bad rate":        "finished in 3.00s, lots req/s, 1MB/s\nrequests: 1 total, 1 done\n",
		"bad count":       "finished in 3.00s, 1.00 req/s, 1MB/s\nrequests: x total\n",
		"negative count":  "finished in 3.00s, 1.00 req/s, 1MB/s\nrequests: -1 total\n",
		"connect refused": "starting benchmark...\nclient could not connect to host\n",
	} {
		if _, err := parseH2load([]byte(in)); err == nil {
			t.Errorf("%s: parseH2load accepted %q", name, in)
		}
	}
}

func FuzzParseH2load(f *testing.F) {
	ok, err := os.ReadFile(filepath.Join("testdata", "h2load-ok.txt"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ok)
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseH2load(in)
		if err != nil {
			return
		}
		if r.RPS < 0 || r.Done < 0 || r.Succeeded < 0 || r.errors() < 0 {
			t.Fatalf("accepted negative values: %+v", r)
		}
	})
}
