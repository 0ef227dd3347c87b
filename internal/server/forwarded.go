package server

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind reverse proxies the TCP peer is the proxy, and the client's address
// comes from X-Forwarded-For or Forwarded (RFC 7239) — headers any client can
// send. They are believed only when the peer is a configured trusted proxy,
// and read from the right: each trusted proxy appends the address it got the
// request from, so the first address from the right that is not a trusted
// proxy is the client (anything left of it was written by the client and
// proves nothing). The result replaces r.RemoteAddr, so every layer below
// (failed-login limits, logs) uses the client's address.

type forwardedKey struct{}

// forwardedInfo is what the trusted-proxy middleware learned about a request.
type forwardedInfo struct {
	peer  string // the TCP peer (a proxy) when RemoteAddr was replaced, else ""
	proto string // "http" or "https" as a trusted proxy reported, else ""
}

// Scheme is the scheme the client used: https for TLS to this server, or what
// a trusted proxy reported (X-Forwarded-Proto, Forwarded proto=); else http.
func Scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if fi, ok := r.Context().Value(forwardedKey{}).(forwardedInfo); ok && fi.proto != "" {
		return fi.proto
	}
	return "http"
}

// Peer is the TCP peer of r when it was a trusted proxy, else "".
func Peer(r *http.Request) string {
	fi, _ := r.Context().Value(forwardedKey{}).(forwardedInfo)
	return fi.peer
}

// trustForwarded rewrites r.RemoteAddr to the client's address when the peer
// is a trusted proxy (see the comment above).
func (s *Server) trustForwarded(next http.Handler) http.Handler {
	if len(s.opts.TrustedProxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := parseHostAddr(r.RemoteAddr)
		if !ok || !s.trusted(peer) {
			next.ServeHTTP(w, r)
			return
		}
		client, proto := s.forwardedClient(peer, r.Header)
		fi := forwardedInfo{proto: proto}
		if client != peer.Unmap() {
			fi.peer, r.RemoteAddr = r.RemoteAddr, client.String()
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, fi)))
	})
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient walks the forwarded-for hops of h from the right, starting
// at the trusted peer. It stops at the first hop that is not a trusted proxy
// (the client) or that cannot be read (then the last trusted hop is the client:
// nothing it passed on can be checked).
func (s *Server) forwardedClient(peer netip.Addr, h http.Header) (client netip.Addr, proto string) {
	hops, protos := forwardedHops(h)
	client = peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHostAddr(hops[i])
		if !ok {
			break
		}
		client = a.Unmap()
		if i < len(protos) {
			proto = protos[i]
		}
		if !s.trusted(client) {
			break
		}
	}
	if proto != "http" && proto != "https" {
		proto = ""
	}
	return client, proto
}

// forwardedHops lists the forwarded-for addresses, nearest proxy last, and the
// scheme each hop reported: from Forwarded when present, else from
// X-Forwarded-For (with X-Forwarded-Proto's first value for every hop).
func forwardedHops(h http.Header) (hops, protos []string) {
	if fw := h.Values("Forwarded"); len(fw) > 0 {
		for _, elem := range splitList(strings.Join(fw, ",")) {
			var forAddr, proto string
			for _, pair := range strings.Split(elem, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
				v = strings.Trim(strings.TrimSpace(v), `"`)
				switch strings.ToLower(k) {
				case "for":
					forAddr = v
				case "proto":
					proto = strings.ToLower(v)
				}
			}
			hops, protos = append(hops, forAddr), append(protos, proto)
		}
		return hops, protos
	}
	hops = splitList(strings.Join(h.Values("X-Forwarded-For"), ","))
	proto := ""
	if p := splitList(h.Get("X-Forwarded-Proto")); len(p) > 0 {
		proto = strings.ToLower(p[0])
	}
	for range hops {
		protos = append(protos, proto)
	}
	return hops, protos
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseHostAddr reads an IP address, with or without port ("1.2.3.4:80",
// "[2001:db8::1]:80", "2001:db8::1", "[2001:db8::1]").
func parseHostAddr(v string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr(), true
	}
	if host, _, err := net.SplitHostPort(v); err == nil {
		v = host
	}
	a, err := netip.ParseAddr(strings.Trim(v, "[]"))
	return a, err == nil && a.Zone() == ""
}
