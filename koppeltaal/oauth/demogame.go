package oauth

import (
	_ "embed"
	"net/http"
)

//go:embed demogame.html
var demoGame []byte

// DemoGamePage serves a minimal Koppeltaal browser module (the demo game of
// koppeltaal.DemoConfig): launched by a portal it reads the Conformance,
// authorizes, gets a token as a public client and claims the patient's next
// message with the Bearer token, all with fetch. The same page, served from
// another origin, is what the headless-browser test drives.
func DemoGamePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src *")
		_, _ = w.Write(demoGame)
	})
}
