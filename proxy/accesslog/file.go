package accesslog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

const (
	// DefaultFlushInterval is Envoy's file_flush_interval.
	DefaultFlushInterval = time.Second
	// DefaultBufferLimit bounds the bytes waiting to be written. Beyond it
	// lines are dropped, so that a stuck writer costs memory only up to here.
	DefaultBufferLimit = 4 << 20
	// flushSize wakes the flusher early, as Envoy's 64 KiB flush threshold.
	flushSize = 64 << 10
	// initialBuffer leaves room above flushSize for lines that arrive while
	// the flusher wakes up.
	initialBuffer = flushSize + flushSize/4
	// shrinkAfter is how long a buffer that grew during a burst is kept
	// after the last flush that needed it.
	shrinkAfter = time.Minute
	// maxPooledLine keeps the line pool from holding on to rare huge lines.
	maxPooledLine = 64 << 10
)

// Options tune a FileLogger. The zero value gives Envoy's defaults.
type Options struct {
	// FlushInterval is how often buffered lines are written. Default 1s.
	FlushInterval time.Duration
	// BufferLimit bounds the buffered bytes; lines beyond it are dropped and
	// counted. Default 4 MiB. After a burst the logger may hold two buffers
	// of up to this size for about a minute before it shrinks them.
	BufferLimit int
	// Stdout and Stderr replace os.Stdout and os.Stderr for the paths
	// "stdout" and "stderr", for tests and embedding. Default: the real ones.
	Stdout, Stderr io.Writer
	// Logger receives write errors. Default slog.Default().
	Logger *slog.Logger
}

// FileLogger is a Logger that buffers formatted lines and writes them to a
// file, stdout or stderr from a background goroutine. Create it with New
// and stop it with Close.
type FileLogger struct {
	format Formatter
	path   string
	limit  int
	log    *slog.Logger
	lines  sync.Pool // *[]byte scratch buffers for formatting one line

	mu      sync.Mutex // guards buf and closed
	buf     []byte
	closed  bool
	dropped atomic.Uint64

	wmu     sync.Mutex // serialises writes, Reopen and Close; guards w, f, spare, failing
	w       io.Writer
	f       *os.File // nil for stdout/stderr
	spare   []byte
	failing bool
	// lastBigFlush is when a flush last needed more than initialBuffer.
	lastBigFlush time.Time

	kick     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewFormatter returns the Formatter that cfg asks for: JSON when Format is
// "" or "json", and for "text" the compiled TextFormat (DefaultTextFormat
// when TextFormat is empty).
func NewFormatter(cfg config.AccessLog) (Formatter, error) {
	switch cfg.Format {
	case "", "json":
		if cfg.TextFormat != "" {
			return nil, errors.New(`access log: text_format is set but format is "json"; set format: text to use it`)
		}
		return JSON{}, nil
	case "text":
		src := cfg.TextFormat
		if src == "" {
			src = DefaultTextFormat
		}
		tf, err := CompileTextFormat(src)
		if err != nil {
			return nil, err
		}
		return tf, nil
	default:
		return nil, fmt.Errorf("access log: unknown format %q: allowed values are \"json\" and \"text\"", cfg.Format)
	}
}

// New returns a started FileLogger for cfg. Path "stdout" (the default) and
// "stderr" name the standard streams; anything else is a file, opened for
// appending and created with mode 0644 if missing.
func New(cfg config.AccessLog, opts Options) (*FileLogger, error) {
	format, err := NewFormatter(cfg)
	if err != nil {
		return nil, err
	}
	if opts.FlushInterval < 0 || opts.BufferLimit < 0 {
		return nil, fmt.Errorf("access log %q: flush interval and buffer limit must not be negative", cfg.Path)
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.BufferLimit == 0 {
		opts.BufferLimit = DefaultBufferLimit
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &FileLogger{
		format: format,
		path:   cfg.Path,
		limit:  opts.BufferLimit,
		buf:    make([]byte, 0, initialBuffer),
		spare:  make([]byte, 0, initialBuffer),
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	l.lines.New = func() any { b := make([]byte, 0, 1024); return &b }
	switch cfg.Path {
	case "", "stdout":
		l.path = "stdout"
		l.w = writerOr(opts.Stdout, os.Stdout)
	case "stderr":
		l.w = writerOr(opts.Stderr, os.Stderr)
	default:
		f, err := openLog(cfg.Path)
		if err != nil {
			return nil, err
		}
		l.f, l.w = f, f
	}
	l.log = opts.Logger.With("access_log", l.path)
	go l.flushLoop(opts.FlushInterval)
	return l, nil
}

func writerOr(w, def io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return def
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: open %q: %w", path, err)
	}
	return f, nil
}

// Log formats info and queues the line. It never blocks on I/O: when the
// buffer already holds the limit, the line is dropped and counted.
func (l *FileLogger) Log(info *streaminfo.Info) {
	if info == nil {
		return
	}
	bp := l.lines.Get().(*[]byte)
	line := l.format.AppendLine((*bp)[:0], info)

	l.mu.Lock()
	if l.closed || len(l.buf)+len(line) > l.limit {
		l.mu.Unlock()
		l.dropped.Add(1)
	} else {
		l.buf = append(l.buf, line...)
		n := len(l.buf)
		l.mu.Unlock()
		if n >= flushSize {
			select {
			case l.kick <- struct{}{}:
			default: // a flush is already pending
			}
		}
		if n >= l.limit/2 {
			// The flusher is falling behind, typically because request
			// goroutines keep every CPU busy and the woken flusher waits
			// for a preemption. Yielding lets it run before lines have to
			// be dropped; it costs this request a reschedule, not I/O.
			runtime.Gosched()
		}
	}

	if cap(line) <= maxPooledLine {
		*bp = line[:0]
		l.lines.Put(bp)
	}
}

// Dropped returns how many lines were lost: dropped because the buffer was
// full or the logger closed, or not written because of a write error.
func (l *FileLogger) Dropped() uint64 { return l.dropped.Load() }

// Path returns the configured output: a file path, "stdout" or "stderr".
func (l *FileLogger) Path() string { return l.path }

func (l *FileLogger) flushLoop(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.kick:
		}
		_ = l.Flush() // errors are counted and logged by Flush
	}
}

// Flush writes the buffered lines now. Lines that could not be written are
// counted in Dropped and the error is returned.
func (l *FileLogger) Flush() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.flushLocked()
}

func (l *FileLogger) flushLocked() error {
	l.mu.Lock()
	chunk := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	if len(chunk) == 0 {
		l.spare = chunk
		return nil
	}
	n, err := l.w.Write(chunk)
	if err == nil && n < len(chunk) {
		err = io.ErrShortWrite
	}
	if err != nil {
		// Count every line whose newline did not reach the output; a line
		// cut in half is lost too.
		lost := bytes.Count(chunk[n:], []byte{'\n'})
		l.dropped.Add(uint64(lost))
		err = fmt.Errorf("access log %q: write: %w", l.path, err)
		if !l.failing {
			l.log.Error("access log write failed; dropping lines until it recovers", "error", err, "lines", lost)
			l.failing = true
		}
	} else if l.failing {
		l.log.Info("access log writes recovered", "dropped_total", l.dropped.Load())
		l.failing = false
	}
	// Keep the buffer for reuse: under load it grows past flushSize while
	// the flusher is waking up, and reallocating it would cost allocations
	// on the request path. Once no flush has needed more than a small
	// buffer for shrinkAfter (a burst or an outage is over), a grown buffer
	// is replaced by a small one, so memory returns to normal.
	now := time.Now()
	if len(chunk) > initialBuffer {
		l.lastBigFlush = now
	}
	if cap(chunk) > initialBuffer && now.Sub(l.lastBigFlush) > shrinkAfter {
		l.spare = make([]byte, 0, initialBuffer)
	} else {
		l.spare = chunk[:0]
	}
	return err
}

// Reopen flushes what is buffered to the current file, then opens the path
// again and switches to it: after logrotate renames the file, new lines go
// to a new file at the configured path. For stdout and stderr it only
// flushes. If the path cannot be opened the old file stays in use and the
// error names the path.
func (l *FileLogger) Reopen() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return fmt.Errorf("access log %q: reopen after close", l.path)
	}
	flushErr := l.flushLocked()
	if l.f == nil {
		return flushErr
	}
	f, err := openLog(l.path)
	if err != nil {
		return errors.Join(flushErr, err)
	}
	old := l.f
	l.f, l.w = f, f
	if err := old.Close(); err != nil {
		return errors.Join(flushErr, fmt.Errorf("access log %q: close rotated file: %w", l.path, err))
	}
	return flushErr
}

// Close stops the flusher, writes what is buffered and closes the file.
// Lines logged after Close are dropped and counted. Close is idempotent.
func (l *FileLogger) Close() error {
	var err error
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
		<-l.done

		l.wmu.Lock()
		defer l.wmu.Unlock()
		err = l.flushLocked()
		if l.f != nil {
			if cerr := l.f.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("access log %q: close: %w", l.path, cerr))
			}
		}
	})
	return err
}
