package linewriter

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentLines: lines written from many goroutines all arrive, each whole, and each
// goroutine's lines in the order it wrote them.
func TestConcurrentLines(t *testing.T) {
	var out lockedBuffer
	w := New(&out, time.Millisecond)
	const writers, lines = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				// Long enough that batches fill and flush from Write, not only on the timer.
				fmt.Fprintf(w, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", i%300))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	next := make([]int, writers)
	sc := bufio.NewScanner(bytes.NewReader(out.bytes()))
	n := 0
	for sc.Scan() {
		var g, i int
		var pad string
		if _, err := fmt.Sscanf(sc.Text(), "{\"g\":%d,\"i\":%d,\"pad\":%q}", &g, &i, &pad); err != nil || len(pad) != i%300 {
			t.Fatalf("line %d = %q: not a whole line (%v)", n, sc.Text(), err)
		}
		if i != next[g] {
			t.Fatalf("line %d = %q, want writer %d's line %d", n, sc.Text(), g, next[g])
		}
		next[g]++
		n++
	}
	if n != writers*lines {
		t.Errorf("read %d lines, want %d", n, writers*lines)
	}
}

// TestFlushesOnItsOwn: a line reaches the reader without Flush or Close.
func TestFlushesOnItsOwn(t *testing.T) {
	pr, pw := io.Pipe()
	w := New(pw, 10*time.Millisecond)
	defer w.Close()
	io.WriteString(w, "one line\n")
	got, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || got != "one line\n" {
		t.Errorf("read %q, %v; want the line", got, err)
	}
}

// TestFlushAndClose: Flush writes what is kept; Close writes the rest; a write after Close
// goes out at once.
func TestFlushAndClose(t *testing.T) {
	var out lockedBuffer
	w := New(&out, time.Hour)
	io.WriteString(w, "a\n")
	if err := w.Flush(); err != nil || out.String() != "a\n" {
		t.Fatalf("after Flush: %q, %v; want \"a\\n\"", out.String(), err)
	}
	io.WriteString(w, "b\n")
	if err := w.Close(); err != nil || out.String() != "a\nb\n" {
		t.Fatalf("after Close: %q, %v; want \"a\\nb\\n\"", out.String(), err)
	}
	io.WriteString(w, "c\n")
	if out.String() != "a\nb\nc\n" {
		t.Errorf("write after Close: %q, want it written at once", out.String())
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

// TestFlushError: the underlying writer's error is reported by Flush.
func TestFlushError(t *testing.T) {
	pr, pw := io.Pipe()
	pr.Close()
	w := New(pw, time.Hour)
	defer w.Close()
	io.WriteString(w, "line\n")
	if err := w.Flush(); err == nil {
		t.Error("Flush() to a closed pipe = nil, want an error")
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func (l *lockedBuffer) String() string { return string(l.bytes()) }
