package stats

import "sync/atomic"

// sample is one histogram value waiting for a timer-mode StatsD sink.
type sample struct {
	hist  uint32 // index of the histogram in the store
	v     uint64
	trace TraceID // zero unless the request was sampled
}

type cell struct {
	seq atomic.Uint64
	s   sample
}

// sampleQueue is a bounded lock-free multi-producer queue (Dmitry Vyukov's
// bounded MPMC design) with one consumer, the flusher. Producers are request
// goroutines: push never blocks and never allocates; when the queue is full
// it fails and the caller counts the drop.
type sampleQueue struct {
	_     [64]byte // keep tail off the cache line of whatever precedes us
	tail  atomic.Uint64
	_     [56]byte
	head  atomic.Uint64
	_     [56]byte
	mask  uint64
	cells []cell
}

// newSampleQueue returns a queue holding at least size samples (rounded up
// to a power of two).
func newSampleQueue(size int) *sampleQueue {
	n := 1
	for n < size {
		n <<= 1
	}
	q := &sampleQueue{mask: uint64(n - 1), cells: make([]cell, n)}
	for i := range q.cells {
		q.cells[i].seq.Store(uint64(i))
	}
	return q
}

func (q *sampleQueue) push(s sample) bool {
	pos := q.tail.Load()
	for {
		c := &q.cells[pos&q.mask]
		seq := c.seq.Load()
		switch dif := int64(seq) - int64(pos); {
		case dif == 0:
			if q.tail.CompareAndSwap(pos, pos+1) {
				c.s = s
				c.seq.Store(pos + 1)
				return true
			}
			pos = q.tail.Load()
		case dif < 0:
			return false // full
		default:
			pos = q.tail.Load()
		}
	}
}

// pop removes one sample; only one goroutine may call it.
func (q *sampleQueue) pop() (sample, bool) {
	pos := q.head.Load()
	c := &q.cells[pos&q.mask]
	if int64(c.seq.Load())-int64(pos+1) < 0 {
		return sample{}, false
	}
	s := c.s
	c.seq.Store(pos + q.mask + 1)
	q.head.Store(pos + 1)
	return s, true
}
