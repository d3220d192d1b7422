// Command upstream is the end-to-end tests' upstream service: a plain
// HTTP/1.1 and h2c (prior knowledge) server whose behaviour a test changes at runtime, so a
// scenario can make an endpoint slow, failing or unhealthy while load runs.
//
// Every response carries "X-Upstream: <name>" and the body "<name>".
// GET /healthz answers the health status (default 200). POST or GET
// /_control?delay=50ms&status=503&health=503&health_header=1 changes the
// behaviour (an empty value resets a field); GET /_stats returns JSON with
// the number of requests served (excluding /healthz, /_control and /_stats)
// and the Host header of the last one.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type behaviour struct {
	delay        time.Duration
	status       int
	health       int
	healthHeader bool
}

type server struct {
	name     string
	mu       sync.Mutex
	b        behaviour
	served   atomic.Int64
	lastHost atomic.Value // string
}

func (s *server) current() behaviour {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b
}

func (s *server) control(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, vals := range q {
		v := vals[0]
		var err error
		switch key {
		case "delay":
			s.b.delay = 0
			if v != "" {
				s.b.delay, err = time.ParseDuration(v)
			}
		case "status":
			s.b.status = 0
			if v != "" {
				s.b.status, err = strconv.Atoi(v)
			}
		case "health":
			s.b.health = 0
			if v != "" {
				s.b.health, err = strconv.Atoi(v)
			}
		case "health_header":
			s.b.healthHeader = v == "1" || v == "true"
		default:
			err = fmt.Errorf("unknown control %q (allowed: delay, status, health, health_header)", key)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	fmt.Fprintf(w, "%+v\n", s.b)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_control":
		s.control(w, r)
		return
	case "/_stats":
		host, _ := s.lastHost.Load().(string)
		_ = json.NewEncoder(w).Encode(map[string]any{"served": s.served.Load(), "last_host": host})
		return
	case "/healthz":
		b := s.current()
		if b.healthHeader {
			w.Header().Set("X-Envoy-Immediate-Health-Check-Fail", "true")
		}
		code := b.health
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		return
	}
	s.served.Add(1)
	s.lastHost.Store(r.Host)
	b := s.current()
	_, _ = io.Copy(io.Discard, r.Body)
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("X-Upstream", s.name)
	if b.status != 0 {
		w.WriteHeader(b.status)
	}
	_, _ = io.WriteString(w, s.name)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	name := flag.String("name", "upstream", "name reported in X-Upstream and the body")
	flag.Parse()
	s := &server{name: *name}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Addr: *addr, Handler: s, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
	log.SetOutput(os.Stderr)
	log.Fatal(srv.ListenAndServe())
}
