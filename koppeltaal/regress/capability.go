package regress

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
)

// Capability is something optional a case needs: an account in the configuration, or a feature of the
// target the operator has set up (a short claim timeout, a webhook pointing at the suite).
type Capability string

// Capabilities.
const (
	CapSecondSubscriber   Capability = "second-subscriber"
	CapLegacy             Capability = "legacy-instance"
	CapModule             Capability = "module"
	CapConfidentialClient Capability = "confidential-client"
	CapPublicClient       Capability = "public-client"
	CapCORS               Capability = "cors-origin"
	CapClaimTimeout       Capability = "short-claim-timeout"
	CapWebhook            Capability = "webhook"
)

// probe checks that the target answers as a Koppeltaal server and that every configured account logs in,
// decides which capabilities are there, and starts the webhook receiver.
func (s *suite) probe(ctx context.Context) error {
	resp, err := exchange(ctx, s.hc, s.cfg.Target, 0, Request{URL: fhirPrefix + "/metadata", Accept: "application/json"})
	if err != nil {
		return fmt.Errorf("the target does not answer: %w", err)
	}
	if resp.Status != http.StatusOK {
		return fmt.Errorf("the target is not a Koppeltaal server: GET %s/metadata answered %d", fhirPrefix, resp.Status)
	}
	for _, a := range s.accounts() {
		// A search for a patient nobody has: it changes nothing and needs valid credentials.
		q := url.Values{"_summary": {"true"}, "_count": {"1"}, "Patient": {"https://regress.invalid/Patient/login-check"}}
		resp, err := exchange(ctx, s.hc, s.cfg.Target, 0, Request{URL: fhirPrefix + "/MessageHeader/_search?" + q.Encode(), Basic: &a, Accept: "application/json"})
		if err != nil {
			return err
		}
		if resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden {
			return fmt.Errorf("the target refuses the credentials of %s (HTTP %d): check the configuration", a.Username, resp.Status)
		}
	}
	c := s.cfg
	s.caps = map[Capability]string{
		CapSecondSubscriber:   ifMissing(len(c.Subscribers) >= 2, "the configuration lists one subscriber; add a second instance subscribed to CreateOrUpdateCarePlan under subscribers"),
		CapLegacy:             ifMissing(c.Legacy != nil, "no legacy instance (api-version 1.3.3) in the configuration"),
		CapModule:             ifMissing(c.Module != nil, "no module (launchable application) in the configuration"),
		CapConfidentialClient: ifMissing(c.Module != nil && c.Module.ClientSecret != "", "the module has no client_secret (a confidential client) in the configuration"),
		CapPublicClient:       ifMissing(c.PublicClient != nil, "no public_client in the configuration"),
		CapCORS:               ifMissing(c.CORSOrigin != "", "no cors_origin (an origin the target allows) in the configuration"),
		CapClaimTimeout:       ifMissing(c.ClaimTimeout > 0, "the target's claim timeout is not known to be short: set claim_timeout (at most 1m) to wait for it"),
		CapWebhook:            ifMissing(c.Webhook != nil, "no webhook in the configuration: point an instance's webhook at a host:port and set webhook.username and webhook.listen"),
	}
	if c.Webhook != nil {
		h, err := listenHooks(c.Webhook.Listen)
		if err != nil {
			return fmt.Errorf("webhook receiver: %w", err)
		}
		s.hook = h
	}
	return nil
}

func (s *suite) close() {
	if s.hook != nil {
		s.hook.close()
	}
}

// accounts are every instance the configuration names.
func (s *suite) accounts() []Account {
	out := append([]Account{s.cfg.Portal}, s.cfg.Subscribers...)
	if s.cfg.Legacy != nil {
		out = append(out, *s.cfg.Legacy)
	}
	if s.cfg.Module != nil && s.cfg.Module.Username != "" {
		out = append(out, s.cfg.Module.Account)
	}
	return out
}

func ifMissing(ok bool, why string) string {
	if ok {
		return ""
	}
	return why
}

// missing returns why capability c is not there, or "".
func (s *suite) missing(c Capability) string { return s.caps[c] }

// capsReport lists the capabilities and whether they were found, for the report.
func (s *suite) capsReport() map[string]string {
	out := map[string]string{}
	keys := make([]string, 0, len(s.caps))
	for k := range s.caps {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why := s.caps[Capability(k)]; why != "" {
			out[k] = "absent: " + why
		} else {
			out[k] = "present"
		}
	}
	return out
}
