// Package linewriter batches log lines into few writes. A decision log that writes each
// line with its own system call spends more CPU on the call than on the decision; this
// writer gathers whole lines in memory and writes them out together, from a background
// flusher every interval, as soon as a batch is large, and on Flush (shutdown, reload).
package linewriter

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// batchBytes is the batch size that is written at once instead of waiting for the flusher:
// a pipe's capacity on Linux is 64 KiB, so one write of this size does not block a reader
// that keeps up.
const batchBytes = 32 << 10

// Writer buffers whole lines for an io.Writer. It is safe for concurrent use: each Write is
// kept whole and in the order Write was called, so lines never interleave. A Write never
// waits for the underlying writer unless its batch is full.
type Writer struct {
	out io.Writer

	mu  sync.Mutex // guards buf
	buf []byte

	// flushMu orders flushes, so batches reach out in the order they were taken.
	flushMu sync.Mutex
	spare   []byte // the other buffer, swapped with buf by each flush; guarded by flushMu

	stop    chan struct{}
	stopped sync.WaitGroup
	close   sync.Once
	closed  atomic.Bool
}

// New returns a Writer that writes to out at least every interval. Close it to stop the
// flusher and write what is left.
func New(out io.Writer, interval time.Duration) *Writer {
	w := &Writer{out: out, buf: make([]byte, 0, batchBytes), spare: make([]byte, 0, batchBytes), stop: make(chan struct{})}
	w.stopped.Add(1)
	go w.flushEvery(interval)
	return w
}

// Write keeps p, which should hold whole lines (one slog record is one call), for the
// next flush. It never fails: an error of the underlying writer is reported by Flush.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= batchBytes
	w.mu.Unlock()
	if full || w.closed.Load() {
		w.Flush()
	}
	return len(p), nil
}

// Flush writes every line kept so far and returns the underlying writer's error, if any.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	var err error
	if len(batch) > 0 {
		_, err = w.out.Write(batch)
	}
	// Keep the buffer for reuse unless one burst grew it far beyond a batch.
	if cap(batch) <= 4*batchBytes {
		w.spare = batch[:0]
	} else {
		w.spare = make([]byte, 0, batchBytes)
	}
	return err
}

// Close stops the flusher and writes what is left. Writes after Close (a late log line
// during shutdown) are written at once.
func (w *Writer) Close() error {
	w.closed.Store(true)
	w.close.Do(func() { close(w.stop) })
	w.stopped.Wait()
	return w.Flush()
}

func (w *Writer) flushEvery(interval time.Duration) {
	defer w.stopped.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.Flush()
		}
	}
}
