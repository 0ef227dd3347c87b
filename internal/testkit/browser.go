package testkit

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// Chromium is where the browser tests find Debian's Chromium (apt-get install -y chromium chromium-driver).
const Chromium = "/usr/bin/chromium"

// Browser starts headless Chromium for t — skipping t, with the reason, when it is not installed — and
// returns a chromedp context that owns the browser until the test ends. extra options (a window size, say)
// come after the defaults: headless, no sandbox, no GPU, no background networking or component updates.
func Browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(Chromium); err != nil {
		t.Skipf("headless-browser test skipped: %s not found (apt-get install -y chromium chromium-driver)", Chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(Chromium), chromedp.Flag("headless", true),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.NoFirstRun)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, extra...)...)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return bctx
}
