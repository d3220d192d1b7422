package ingest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

func TestParseProcNetUDP(t *testing.T) {
	in := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 5
  2: 00000000:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 7
  3: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 100
`
	if d, ok := parseProcNetUDP(in, 8125); !ok || d != 12 {
		t.Errorf("drops for 8125 = %d %v, want 12", d, ok)
	}
	if _, ok := parseProcNetUDP(in, 9999); ok {
		t.Error("found a port that is not there")
	}
}

type recorder struct {
	mu   sync.Mutex
	pkts []string
}

func (r *recorder) HandlePacket(p []byte) {
	r.mu.Lock()
	r.pkts = append(r.pkts, string(p))
	r.mu.Unlock()
}
func (r *recorder) HandleLine(l []byte) { r.HandlePacket(l) }

func TestUDPReuseportBatch(t *testing.T) {
	conns, err := ListenUDP(context.Background(), "127.0.0.1:0", 2, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if conns[0].LocalAddr().String() != conns[1].LocalAddr().String() {
		t.Fatalf("readers on different ports: %v %v", conns[0].LocalAddr(), conns[1].LocalAddr())
	}
	var st Stats
	rec := &recorder{}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); _ = ServeUDP(c, 8, rec, &st) }()
	}
	out, err := net.Dial("udp", conns[0].LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for range n {
		out.Write([]byte("a:1|c"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.UDPPackets.Load() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	if got := st.UDPPackets.Load(); got != n {
		t.Errorf("received %d packets, want %d", got, n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, p := range rec.pkts {
		if p != "a:1|c" {
			t.Fatalf("packet %q", p)
		}
	}
}

func TestTrimEOL(t *testing.T) {
	for in, want := range map[string]string{"a\n": "a", "a\r\n": "a", "a": "a", "\n": "", "a\r": "a\r"} {
		if got := string(trimEOL([]byte(in))); got != want {
			t.Errorf("trimEOL(%q) = %q, want %q", in, got, want)
		}
	}
}
