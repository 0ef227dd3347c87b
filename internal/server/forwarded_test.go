package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestTrustedProxies (issue 16 items 2 and 9): forwarding headers count only
// from a configured proxy, read from the right, skipping trusted hops; what a
// client wrote itself (left of the first untrusted hop) is ignored.
func TestTrustedProxies(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	cases := []struct {
		name        string
		peer        string
		header      map[string][]string
		wantRemote  string
		wantScheme  string
		wantPeerLog string
	}{
		{"no proxies configured", "203.0.113.5:4000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "203.0.113.5:4000", "http", ""},
		{"untrusted peer: headers ignored", "203.0.113.5:4000",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, "203.0.113.5:4000", "http", ""},
		{"trusted proxy", "10.0.0.2:5000",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, "198.51.100.1", "https", "10.0.0.2:5000"},
		{"client-written hops left of the real client are ignored", "10.0.0.2:5000",
			map[string][]string{"X-Forwarded-For": {"1.2.3.4, 5.6.7.8", "198.51.100.1, 10.9.9.9"}}, "198.51.100.1", "http", "10.0.0.2:5000"},
		{"only trusted hops: the leftmost", "10.0.0.2:5000",
			map[string][]string{"X-Forwarded-For": {"10.1.1.1, 10.2.2.2"}}, "10.1.1.1", "http", "10.0.0.2:5000"},
		{"garbage hop: the last trusted hop is the client", "10.0.0.2:5000",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1, not-an-ip"}}, "10.0.0.2:5000", "http", ""},
		{"hop with a port", "10.0.0.2:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1:1234"}}, "198.51.100.1", "http", "10.0.0.2:5000"},
		{"trusted proxy without headers", "10.0.0.2:5000", nil, "10.0.0.2:5000", "http", ""},
		{"Forwarded wins over X-Forwarded-For", "10.0.0.2:5000", map[string][]string{
			"Forwarded":       {`for=198.51.100.9;proto=https, for="[2001:db8:1::7]:80";proto=http`},
			"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.9", "https", "10.0.0.2:5000"},
		{"Forwarded IPv6 client", "[2001:db8:1::2]:443", map[string][]string{
			"Forwarded": {`for="[2001:db8:2::5]:1234";proto=https`}}, "2001:db8:2::5", "https", "[2001:db8:1::2]:443"},
		{"Forwarded obfuscated identifier", "10.0.0.2:5000", map[string][]string{
			"Forwarded": {`for=_hidden, for=198.51.100.9`}}, "198.51.100.9", "http", "10.0.0.2:5000"},
		{"bad proto ignored", "10.0.0.2:5000",
			map[string][]string{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"gopher"}}, "198.51.100.1", "http", "10.0.0.2:5000"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1"}}, "198.51.100.1", "http", "[::ffff:10.0.0.2]:5000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{TrustedProxies: proxies, Logger: quietLogger()}
			if c.name == "no proxies configured" {
				opts.TrustedProxies = nil
			}
			s := New(opts)
			var remote, scheme, peer string
			h := s.trustForwarded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				remote, scheme, peer = r.RemoteAddr, Scheme(r), Peer(r)
			}))
			r := httptest.NewRequest("GET", "/x", nil)
			r.RemoteAddr = c.peer
			for k, vs := range c.header {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if remote != c.wantRemote || scheme != c.wantScheme || peer != c.wantPeerLog {
				t.Fatalf("remote %q scheme %q peer %q; want %q %q %q", remote, scheme, peer, c.wantRemote, c.wantScheme, c.wantPeerLog)
			}
		})
	}
}
