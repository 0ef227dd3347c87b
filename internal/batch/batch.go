// Package batch gathers records made on a hot path (audit records of reads,
// HTTP request log rows) and writes them together, one transaction per
// interval, off that path.
package batch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Options configure New.
type Options[T any] struct {
	// Write stores items (one transaction). On an error they are kept and
	// written with the next batch.
	Write func(ctx context.Context, items []T) error
	// Interval is how long an item waits to be written with the ones after it. Default 100ms.
	Interval time.Duration
	// MaxPending bounds the items waiting. Default 10000.
	MaxPending int
	// DropWhenFull drops an item added while MaxPending are waiting (OnDrop is
	// told); by default Add then writes the batch itself, so nothing is dropped.
	DropWhenFull bool
	// OnError is told of a failed write (default: nothing); OnDrop of a dropped item.
	OnError func(error)
	OnDrop  func()
}

// Batcher holds items until its writer stores them.
type Batcher[T any] struct {
	opts    Options[T]
	mu      sync.Mutex
	pending []T
	wmu     sync.Mutex // held while a batch is written: Flush returns after writes in flight
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// New starts a Batcher's writer; Close stops it after a last write.
func New[T any](opts Options[T]) (*Batcher[T], error) {
	if opts.Write == nil {
		return nil, errors.New("batch: Options.Write is nil")
	}
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 10000
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	if opts.OnDrop == nil {
		opts.OnDrop = func() {}
	}
	b := &Batcher[T]{opts: opts, kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go b.writer()
	return b, nil
}

// Add queues item; it is written within Interval.
func (b *Batcher[T]) Add(ctx context.Context, item T) {
	b.mu.Lock()
	if len(b.pending) >= b.opts.MaxPending && b.opts.DropWhenFull {
		b.mu.Unlock()
		b.opts.OnDrop()
		return
	}
	b.pending = append(b.pending, item)
	full := len(b.pending) >= b.opts.MaxPending
	b.mu.Unlock()
	if full {
		if err := b.Flush(ctx); err != nil {
			b.opts.OnError(err)
		}
		return
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Flush writes the items waiting (and waits for a write in flight).
func (b *Batcher[T]) Flush(ctx context.Context) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	items := b.pending
	b.pending = nil
	b.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	if err := b.opts.Write(context.WithoutCancel(ctx), items); err != nil {
		b.mu.Lock()
		b.pending = append(items, b.pending...) // try again with the next write
		if over := len(b.pending) - b.opts.MaxPending; over > 0 && b.opts.DropWhenFull {
			b.pending = b.pending[over:]
			for range over {
				b.opts.OnDrop()
			}
		}
		b.mu.Unlock()
		return err
	}
	return nil
}

func (b *Batcher[T]) writer() {
	defer close(b.stopped)
	for {
		select {
		case <-b.stop:
			if err := b.Flush(context.Background()); err != nil {
				b.opts.OnError(err)
			}
			return
		case <-b.kick:
		}
		// Gather what comes in during the interval into one write.
		select {
		case <-b.stop:
		case <-time.After(b.opts.Interval):
		}
		if err := b.Flush(context.Background()); err != nil {
			b.opts.OnError(err)
		}
	}
}

// Close writes what is waiting and stops the writer. It is safe to call twice.
func (b *Batcher[T]) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.stopped
	return nil
}
