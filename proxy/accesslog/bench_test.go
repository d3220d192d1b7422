package accesslog

import (
	"io"
	"testing"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func benchFormat(b *testing.B, cfg config.AccessLog) {
	f, err := NewFormatter(cfg)
	if err != nil {
		b.Fatal(err)
	}
	info := fullInfo()
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf = f.AppendLine(buf[:0], info)
		}
		b.SetBytes(int64(len(buf)))
	})
	// log measures the whole per-request cost: pooled line buffer, mutex and
	// buffering, with the flusher writing to io.Discard.
	b.Run("log", func(b *testing.B) {
		l, err := New(cfg, Options{Stdout: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		for b.Loop() {
			l.Log(info)
		}
		b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
	})
	b.Run("log-parallel", func(b *testing.B) {
		l, err := New(cfg, Options{Stdout: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Log(info)
			}
		})
		b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
	})
}

func BenchmarkJSON(b *testing.B) { benchFormat(b, config.AccessLog{Format: "json"}) }

func BenchmarkText(b *testing.B) { benchFormat(b, config.AccessLog{Format: "text"}) }

func BenchmarkJSONEscape(b *testing.B) {
	s := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 \"quoted\" ☃"
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendJSONString(buf[:0], s)
	}
}
