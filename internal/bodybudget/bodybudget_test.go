package bodybudget_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/bodybudget"
)

// done is a closed channel: a handler given it returns at once.
var done = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// read runs Read for one request of body (contentLength -1: chunked) under
// b's Hold; the handler stays (holding what it took) until release is closed.
func read(b *bodybudget.Budget, body io.Reader, contentLength int64, release <-chan struct{}) <-chan error {
	result := make(chan error, 1)
	r := httptest.NewRequest("POST", "/", body)
	r.ContentLength = contentLength
	go b.Hold(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err := bodybudget.Read(r, r.Body, contentLength)
		if err == nil && contentLength >= 0 && int64(len(got)) != contentLength {
			err = errors.New("short body")
		}
		result <- err
		<-release
	})).ServeHTTP(httptest.NewRecorder(), r)
	return result
}

func waitHeld(t *testing.T, b *bodybudget.Budget, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.Held() != want {
		if time.Now().After(deadline) {
			t.Fatalf("held %d, want %d", b.Held(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// A Content-Length is taken up front and held until the handler returns; a
// body that does not fit waits, then is refused; once the first handler is
// done it fits.
func TestContentLengthIsHeldUntilTheHandlerReturns(t *testing.T) {
	b := bodybudget.New(1000, 50*time.Millisecond)
	release := make(chan struct{})
	if err := <-read(b, strings.NewReader(strings.Repeat("a", 800)), 800, release); err != nil {
		t.Fatal(err)
	}
	if b.Held() != 800 {
		t.Fatalf("held %d after reading 800 bytes, want 800", b.Held())
	}
	start := time.Now()
	if err := <-read(b, strings.NewReader(strings.Repeat("b", 300)), 300, done); !errors.Is(err, bodybudget.ErrBusy) {
		t.Fatalf("300 bytes beside 800 of 1000: %v, want ErrBusy", err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("refused after %s, want the wait of 50ms first", waited)
	}
	waitHeld(t, b, 800) // the refused one gave back what it took
	close(release)
	waitHeld(t, b, 0)
	again := make(chan struct{})
	if err := <-read(b, strings.NewReader(strings.Repeat("b", 300)), 300, again); err != nil {
		t.Fatalf("300 bytes once the first request is done: %v", err)
	}
	close(again)
	waitHeld(t, b, 0)
}

// A waiting body gets its bytes as soon as they are given back within the wait.
func TestWaitingBodyGetsInWhenBytesComeBack(t *testing.T) {
	b := bodybudget.New(1000, 5*time.Second)
	release := make(chan struct{})
	if err := <-read(b, strings.NewReader(strings.Repeat("a", 900)), 900, release); err != nil {
		t.Fatal(err)
	}
	second := read(b, strings.NewReader(strings.Repeat("b", 900)), 900, done)
	time.Sleep(20 * time.Millisecond)
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("second body after the first was done: %v", err)
	}
}

// A body without Content-Length takes its bytes chunk by chunk as they arrive:
// it is refused when they run out half-way, and gives back what it took.
func TestChunkedBodyTakesAsItArrives(t *testing.T) {
	b := bodybudget.New(1<<20, 50*time.Millisecond)
	release := make(chan struct{})
	defer close(release)
	small := bytes.Repeat([]byte("c"), 1000)
	if err := <-read(b, bytes.NewReader(small), -1, release); err != nil {
		t.Fatal(err)
	}
	if h := b.Held(); h < 1000 || h > 256<<10 {
		t.Fatalf("a 1000-byte chunked body holds %d bytes, want one chunk at most", h)
	}
	held := b.Held()
	if err := <-read(b, bytes.NewReader(bytes.Repeat([]byte("d"), 1<<20)), -1, done); !errors.Is(err, bodybudget.ErrBusy) {
		t.Fatalf("a 1 MiB chunked body beside %d of 1 MiB: %v, want ErrBusy", held, err)
	}
	waitHeld(t, b, held)
}

// A body larger than the whole budget can never be read: ErrTooLarge at once.
func TestLargerThanTheBudget(t *testing.T) {
	b := bodybudget.New(100, time.Minute)
	if err := <-read(b, strings.NewReader(strings.Repeat("a", 200)), 200, done); !errors.Is(err, bodybudget.ErrTooLarge) {
		t.Fatalf("200 bytes of a 100-byte budget: %v", err)
	}
	if err := <-read(b, strings.NewReader(strings.Repeat("a", 200)), -1, done); !errors.Is(err, bodybudget.ErrTooLarge) {
		t.Fatalf("200 chunked bytes of a 100-byte budget: %v", err)
	}
	waitHeld(t, b, 0)
}

// A small body that fits goes ahead of a large one waiting for its bytes:
// ordinary messages keep flowing while large ones queue.
func TestSmallBodyGoesAheadOfALargeOneWaiting(t *testing.T) {
	b := bodybudget.New(1000, 5*time.Second)
	release := make(chan struct{})
	if err := <-read(b, strings.NewReader(strings.Repeat("a", 800)), 800, release); err != nil {
		t.Fatal(err)
	}
	large := read(b, strings.NewReader(strings.Repeat("b", 500)), 500, done)
	time.Sleep(20 * time.Millisecond) // the large one waits
	start := time.Now()
	if err := <-read(b, strings.NewReader(strings.Repeat("c", 100)), 100, done); err != nil {
		t.Fatalf("100 bytes beside 800 of 1000 with a 500-byte body waiting: %v", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Fatalf("the small body waited %s behind the large one", waited)
	}
	close(release)
	if err := <-large; err != nil {
		t.Fatalf("the large body once the first was done: %v", err)
	}
}
