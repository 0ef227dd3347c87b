package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBatcher: items are written together within the interval, a failed
// write is tried again with the next, and a full queue either writes at once
// (nothing lost) or drops and counts (DropWhenFull).
func TestBatcher(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var writes [][]int
	fail := atomic.Bool{}
	write := func(_ context.Context, items []int) error {
		if fail.Load() {
			return errors.New("database down")
		}
		mu.Lock()
		writes = append(writes, append([]int(nil), items...))
		mu.Unlock()
		return nil
	}
	b, err := New(Options[int]{Write: write, Interval: 50 * time.Millisecond, MaxPending: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		b.Add(ctx, i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(writes)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing written within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(writes) != 1 || len(writes[0]) != 3 {
		t.Fatalf("writes %v, want one of three items", writes)
	}
	fail.Store(true)
	b.Add(ctx, 3)
	if err := b.Flush(ctx); err == nil {
		t.Fatal("a failed write is not reported")
	}
	fail.Store(false)
	for i := 4; i < 7; i++ {
		b.Add(ctx, i) // the fourth pending item fills the queue: written at once
	}
	mu.Lock()
	last := writes[len(writes)-1]
	mu.Unlock()
	if len(last) != 4 || last[0] != 3 {
		t.Fatalf("last write %v: want the failed item first, then 4..6", last)
	}
	_ = b.Close()

	var dropped atomic.Int64
	fail.Store(true)
	d, _ := New(Options[int]{Write: write, Interval: time.Hour, MaxPending: 2, DropWhenFull: true, OnDrop: func() { dropped.Add(1) }})
	for i := range 5 {
		d.Add(ctx, i)
	}
	if dropped.Load() != 3 {
		t.Fatalf("dropped %d, want 3", dropped.Load())
	}
	fail.Store(false)
	_ = d.Close()
	mu.Lock()
	last = writes[len(writes)-1]
	mu.Unlock()
	if len(last) != 2 || last[0] != 0 || last[1] != 1 {
		t.Fatalf("close wrote %v, want [0 1]", last)
	}
}
