package oauth_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestSingleUseUnderConcurrency: the same code exchanged and the same refresh
// token used by 8 clients at once yield exactly one token each time.
func TestSingleUseUnderConcurrency(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		code := e.authorize("Game", e.game, e.launch("Game", patientA))
		var mu sync.Mutex
		var wg sync.WaitGroup
		ok, refresh := 0, ""
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, tok := e.token(code, e.game, [2]string{})
				mu.Lock()
				defer mu.Unlock()
				if r.Status == http.StatusOK {
					ok++
					refresh = tok["refresh_token"].(string)
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d of 8 concurrent exchanges of one code succeeded, want 1", ok)
		}
		ok = 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.refresh(refresh, [2]string{})
				mu.Lock()
				defer mu.Unlock()
				if r.Status == http.StatusOK {
					ok++
				}
			}()
		}
		wg.Wait()
		if ok > 1 {
			t.Fatalf("%d of 8 concurrent refreshes with one refresh token succeeded, want at most 1", ok)
		}
	})
}
