package koppeltaal

import (
	"context"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// versionStore is a remote output's resource-version bookkeeping (store table route_remote_versions): per
// server+domain (scope) and resource URL, the version that server issued last. A local output needs none:
// it reads the store's own versions.
type versionStore struct {
	st    *store.Store
	scope string
}

func (s *versionStore) get(ctx context.Context, urls []string) (map[string]string, error) {
	var out map[string]string
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		out, err = tx.RemoteVersions(ctx, s.scope, urls)
		return err
	})
	return out, err
}

func (s *versionStore) put(ctx context.Context, versions map[string]string) error {
	if len(versions) == 0 {
		return nil
	}
	return s.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutRemoteVersions(ctx, s.scope, versions, time.Now().UnixMicro())
	})
}
