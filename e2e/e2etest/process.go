package e2etest

import (
	"errors"
	"io"
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

	cmd     *exec.Cmd
	out     *SyncBuffer
	done    chan struct{}
	waitErr error // set before done closes
}

// StartProcess runs bin with args, its environment extended by env
// ("KEY=value" entries), output collected for failure messages.
func StartProcess(t testing.TB, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, name, cmd, nil)
}

// startCmd starts cmd as a Process. Its stderr, and its stdout too unless
// stdout is given, are collected in Output; a process whose stdout carries
// data of its own (the proxy's access log) passes a writer for it.
func startCmd(t testing.TB, name string, cmd *exec.Cmd, stdout io.Writer) *Process {
	t.Helper()
	p := &Process{Name: name, cmd: cmd, out: &SyncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if stdout != nil {
		p.cmd.Stdout = stdout
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, tail(p.out.String(), 4000))
		}
	})
	return p
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process, failing the test if it cannot.
func (p *Process) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.Name, err)
	}
}

// WaitExit waits up to limit for the process to exit and returns its exit
// code; a process still running after limit fails the test.
func (p *Process) WaitExit(t testing.TB, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%s still running %v later:\n%s", p.Name, limit, tail(p.Output(), 4000))
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		t.Fatalf("%s: wait: %v", p.Name, p.waitErr)
	}
	return 0
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
	if p.Exited() {
		return
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

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (exec.Cmd.Wait's error) once Done is
// closed; nil before that and after a clean exit.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
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

// WaitHTTP waits up to limit for url to answer 200, failing the test if
// the process exits first.
func (p *Process) WaitHTTP(t testing.TB, url string, limit time.Duration) {
	t.Helper()
	p.WaitFor(t, url+" answering 200", limit, func() error { return HTTPOK(url) })
}
