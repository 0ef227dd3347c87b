package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/routes"
)

// Set runs routes, each on its own Runtime, so one route can be replaced while the others keep running:
// Apply swaps a route whose revision changed (the old one is drained and closed, then the new one
// provisioned and started), starts new routes and stops removed ones. Routes mounted on the server's router
// (an http input without listen:) are served through the Set, so a swapped route's handler is swapped too.
type Set struct {
	base Config // everything but Routes
	log  *slog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's context; nil before Run
	members map[string]*member
	mounts  map[string]http.Handler // pattern → the handler of the route that mounted it
	wg      sync.WaitGroup
	errc    chan error
}

type member struct {
	route  *routes.Route
	rt     *Runtime
	mounts map[string]http.Handler
	cancel context.CancelFunc
	done   chan struct{}
}

// Change is what an Apply did, by route name.
type Change struct {
	Started, Replaced, Stopped, Unchanged []string
}

func (c Change) String() string {
	var parts []string
	for _, p := range []struct {
		what  string
		names []string
	}{{"started", c.Started}, {"replaced", c.Replaced}, {"stopped", c.Stopped}, {"unchanged", c.Unchanged}} {
		if len(p.names) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.names, ", "))
		}
	}
	if len(parts) == 0 {
		return "no routes"
	}
	return strings.Join(parts, "; ")
}

// NewSet provisions rs (every route's adapters: a busy listen port fails here) without starting them; base
// is the configuration every route's Runtime gets (its Routes are ignored).
func NewSet(ctx context.Context, base Config, rs []*routes.Route) (*Set, error) {
	if base.Logger == nil {
		base.Logger = slog.Default()
	}
	s := &Set{base: base, log: base.Logger, members: map[string]*member{}, mounts: map[string]http.Handler{}, errc: make(chan error, 1)}
	for _, r := range rs {
		m, err := s.provision(ctx, r)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.members[r.Name] = m
		s.addMounts(m)
	}
	return s, nil
}

func (s *Set) provision(ctx context.Context, r *routes.Route) (*member, error) {
	m := &member{route: r, mounts: map[string]http.Handler{}}
	cfg := s.base
	cfg.Routes = []*routes.Route{r}
	cfg.Mount = func(pattern string, h http.Handler) { m.mounts[pattern] = h }
	rt, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	m.rt = rt
	return m, nil
}

// addMounts and dropMounts keep the pattern map in step with the members; callers hold mu (or own s).
func (s *Set) addMounts(m *member) {
	for p, h := range m.mounts {
		s.mounts[p] = h
	}
}

func (s *Set) dropMounts(m *member) {
	for p := range m.mounts {
		delete(s.mounts, p)
	}
}

// Mount serves the routes' mounted handlers on the server's router, as the fallback for paths nothing else
// claims (the set of paths changes with the routes).
func (s *Set) Mount(r chi.Router) {
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		s.mu.Lock()
		h := s.mounts[req.URL.Path]
		s.mu.Unlock()
		if h == nil {
			http.NotFound(w, req)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// Run runs every route until ctx ends or one fails, then stops them all.
func (s *Set) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	for _, m := range s.members {
		s.start(m)
	}
	s.mu.Unlock()
	var err error
	select {
	case <-ctx.Done():
	case err = <-s.errc:
	}
	s.mu.Lock()
	for _, m := range s.members {
		m.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Set) start(m *member) {
	ctx, cancel := context.WithCancel(s.ctx)
	m.cancel, m.done = cancel, make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(m.done)
		if err := m.rt.Run(ctx); err != nil && ctx.Err() == nil {
			select {
			case s.errc <- fmt.Errorf("route %s: %w", m.route.Name, err):
			default:
			}
		}
	}()
}

// stop drains a running member (its input stops, its workers finish) and closes its adapters.
func (s *Set) stop(m *member) error {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	return m.rt.Close()
}

// Apply makes rs the running routes. A route whose revision is unchanged keeps running untouched. A changed
// one is drained and closed first (its listen address must be free for the new one), then the new revision
// is provisioned and started; if that fails, the old revision is provisioned and started again and the
// error returned, so a route that worked before keeps working. rs must be loaded and checked already
// (routes.LoadFiles): Apply only fails on what provisioning finds (a port another program took).
func (s *Set) Apply(ctx context.Context, rs []*routes.Route) (Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ch Change
	var errs []error
	want := map[string]*routes.Route{}
	for _, r := range rs {
		want[r.Name] = r
	}
	for name, m := range s.members {
		if _, keep := want[name]; !keep {
			s.dropMounts(m)
			if err := s.stop(m); err != nil {
				errs = append(errs, fmt.Errorf("route %s: close: %w", name, err))
			}
			delete(s.members, name)
			ch.Stopped = append(ch.Stopped, name)
		}
	}
	for _, r := range rs {
		old, running := s.members[r.Name]
		if running && old.route.Revision == r.Revision {
			ch.Unchanged = append(ch.Unchanged, r.Name)
			continue
		}
		if running {
			s.dropMounts(old)
			if err := s.stop(old); err != nil {
				errs = append(errs, fmt.Errorf("route %s: close revision %s: %w", r.Name, old.route.Revision, err))
			}
			delete(s.members, r.Name)
		}
		m, err := s.provision(ctx, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s revision %s not started: %w", r.Name, r.Revision, err))
			if running {
				if back, berr := s.provision(ctx, old.route); berr == nil {
					m = back
					errs = append(errs, fmt.Errorf("route %s keeps running revision %s", r.Name, old.route.Revision))
				} else {
					errs = append(errs, fmt.Errorf("route %s: revision %s could not be restarted either: %w", r.Name, old.route.Revision, berr))
					continue
				}
			} else {
				continue
			}
		} else if running {
			ch.Replaced = append(ch.Replaced, r.Name)
		} else {
			ch.Started = append(ch.Started, r.Name)
		}
		s.members[r.Name] = m
		s.addMounts(m)
		if s.ctx != nil {
			s.start(m)
		}
	}
	for _, l := range [][]string{ch.Started, ch.Replaced, ch.Stopped, ch.Unchanged} {
		sort.Strings(l)
	}
	return ch, errors.Join(errs...)
}

// Routes returns the running routes, by name.
func (s *Set) Routes() []*routes.Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*routes.Route, 0, len(s.members))
	for _, m := range s.members {
		out = append(out, m.route)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Revisions returns the running routes' revisions by name.
func (s *Set) Revisions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.members))
	for name, m := range s.members {
		out[name] = m.route.Revision
	}
	return out
}

// Close closes every route's adapters (after Run has returned, or when Run never ran).
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, m := range s.members {
		errs = append(errs, m.rt.Close())
	}
	return errors.Join(errs...)
}
