package e2etest

import (
	"net/http"
	"sync"
)

// Gate holds upstream requests by path until the test releases that path,
// so that a test decides how long each request stays in flight (to fill a
// circuit breaker or a connection pool, for example).
type Gate struct {
	mu      sync.Mutex
	open    map[string]chan struct{}
	arrived map[string]int
}

// NewGate returns a Gate with every path closed.
func NewGate() *Gate {
	return &Gate{open: map[string]chan struct{}{}, arrived: map[string]int{}}
}

func (g *Gate) ch(path string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.open[path]
	if !ok {
		c = make(chan struct{})
		g.open[path] = c
	}
	return c
}

// Wait counts r's arrival, then blocks until Release(r.URL.Path) or until
// r's context ends. It reports whether the path was released.
func (g *Gate) Wait(r *http.Request) bool {
	c := g.ch(r.URL.Path)
	g.mu.Lock()
	g.arrived[r.URL.Path]++
	g.mu.Unlock()
	select {
	case <-c:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Release lets the requests for path, held or still to come, through. A
// path is released once.
func (g *Gate) Release(path string) { close(g.ch(path)) }

// Arrived returns how many requests for path have reached Wait.
func (g *Gate) Arrived(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.arrived[path]
}

// ReleaseAll releases every path not yet released, so that no handler
// outlives the test; call it at cleanup, before closing the server.
func (g *Gate) ReleaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for p, c := range g.open {
		select {
		case <-c:
		default:
			close(c)
		}
		delete(g.open, p)
	}
}
