package e2etest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Process is a child process a test started: a tool the scenario needs
// (redis-server, the rate-limit service, Jaeger) or a test upstream. It is
// killed at cleanup, and its output is printed if the test failed.
type Process struct {
	// Name says which process it is in failure messages.
	Name string

	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
}

// StartProcess runs bin with args, its environment extended by env
// ("KEY=value" entries), output collected for failure messages.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, out: &SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// Kill sends SIGKILL and waits for the process to exit; a process that
// has already exited is left alone.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Terminate sends SIGTERM, so that a process that supervises others (such
// as deploy/local/up.sh) can stop them, and waits up to limit before it
// kills it. A process that has already exited is left alone.
func (p *Process) Terminate(limit time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.Kill()
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process has written to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// WaitFor polls ready every 20 ms until it returns nil, and fails the test
// if the process exits first or limit passes; what names the awaited state
// in the failure message.
func (p *Process) WaitFor(t testing.TB, what string, limit time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.Exited() {
			t.Fatalf("%s exited before %s:\n%s", p.Name, what, tail(p.Output(), 4000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after %v (%v):\n%s", p.Name, what, limit, err, tail(p.Output(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
