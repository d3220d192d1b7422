package listener

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// deepHandler stands for the connection manager: it recurses through
// depth frames of about 512 bytes each before answering, as routing and
// the upstream exchange do.
type deepHandler struct{ depth int }

func (h deepHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	if descend(h.depth) != h.depth {
		w.WriteHeader(http.StatusInternalServerError)
	}
}

//go:noinline
func descend(n int) int {
	var pad [64]int
	pad[n%len(pad)] = n
	if n == 0 {
		return pad[0]
	}
	return descend(n-1) + 1 + pad[n%len(pad)] - n
}

// BenchmarkH2HandlerStack runs each request on a goroutine of its own, as
// x/net does per stream, through the handler as is and through h2Handler,
// which grows the new goroutine's stack once before the handler runs.
func BenchmarkH2HandlerStack(b *testing.B) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"plain", deepHandler{depth: 20}},
		{"h2Handler", h2Handler{deepHandler{depth: 20}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			done := make(chan struct{})
			for b.Loop() {
				go func() {
					tc.h.ServeHTTP(w, req)
					done <- struct{}{}
				}()
				<-done
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}
