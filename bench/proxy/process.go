package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started. It runs in its own process group
// so that stop also reaches the workers it forks (nginx), and it is killed
// by the kernel if the harness dies first (Pdeathsig).
type child struct {
	name    string
	cmd     *exec.Cmd
	errPath string
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// startChild starts argv with stdout and stderr appended to the given files.
func startChild(name string, argv, env []string, stdoutPath, stderrPath string) (*child, error) {
	stdout, err := os.OpenFile(stdoutPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open stdout file: %w", name, err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open stderr file: %w", name, err)
	}
	defer stderr.Close()

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, argv[0], err)
	}
	c := &child{name: name, cmd: cmd, errPath: stderrPath, done: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has already ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group, waits up to grace, then kills the
// group. It returns once the main process has been reaped; a worker that
// ignored the signals is killed with the group.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	// Only once: after the reap the group ID may be reused by an unrelated
	// process group.
	c.once.Do(func() { c.stopOnce(sig, grace) })
}

func (c *child) stopOnce(sig syscall.Signal, grace time.Duration) {
	pgid := c.cmd.Process.Pid
	if !c.exited() {
		_ = syscall.Kill(-pgid, sig)
		select {
		case <-c.done:
		case <-time.After(grace):
		}
	}
	// Workers may outlive their master; kill whatever is left of the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-c.done
}

// failure describes how the process ended, with the tail of its stderr, for
// error messages when it did not come up.
func (c *child) failure() string {
	state := "is still running"
	if c.exited() {
		state = fmt.Sprintf("exited (%v)", c.waitErr)
	}
	tail := tailFile(c.errPath, 2048)
	if tail == "" {
		return fmt.Sprintf("%s %s; its stderr is empty", c.name, state)
	}
	return fmt.Sprintf("%s %s; end of its stderr:\n%s", c.name, state, tail)
}

// tailFile returns up to the last n bytes of a file, trimmed.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// waitReady polls url until it answers 200 with the upstream's body, so that
// a proxy that answers by itself (a default page, a 502) is not measured.
// A nil wantBody accepts any body, for the services that are not proxies.
// roots, when not nil, is what an https url's certificate must chain to.
func waitReady(ctx context.Context, c *child, url string, roots *x509.CertPool, wantBody []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{DisableKeepAlives: true}
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	var last string
	for {
		if c != nil && c.exited() {
			return fmt.Errorf("waiting for %s: %s", url, c.failure())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness request for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			switch {
			case rerr != nil:
				last = fmt.Sprintf("reading body: %v", rerr)
			case resp.StatusCode != http.StatusOK:
				last = fmt.Sprintf("status %d, body %q", resp.StatusCode, truncate(body, 200))
			case wantBody != nil && !bytes.Equal(body, wantBody):
				last = fmt.Sprintf("status 200 but the body %q is not the upstream's", truncate(body, 200))
			default:
				return nil
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("%s not ready after %v; last attempt: %s", url, timeout, last)
			if c != nil {
				msg += "; " + c.failure()
			}
			if errors.Is(context.Cause(ctx), context.Canceled) {
				return fmt.Errorf("%s: %w", msg, ctx.Err())
			}
			return errors.New(msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// countLines counts newline-terminated lines in a file; a missing file has
// none, which the report flags.
func countLines(path string) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count access-log lines: %w", err)
	}
	defer f.Close()
	var n int64
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("count lines in %s: %w", path, err)
		}
	}
}

// runLoadTool runs a load generator (wrk, h2load) in its own process group,
// killed with the harness or when ctx ends, and returns its stdout. Its
// error starts with the arguments and ends with what the tool printed.
func runLoadTool(ctx context.Context, bin string, args []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.Bytes(), nil
}
